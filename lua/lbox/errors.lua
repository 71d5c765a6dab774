--- Expected failures and exit codes.
-- A user error is a table raised with `error`; the CLI prints its message on
-- one line and exits with its code. Anything else raised is a bug.
local M = {}

--- Exit codes, as docker uses them.
M.codes = {
  ok = 0,
  lbox = 125,           -- lbox's own error: bad input, setup failure
  not_executable = 126, -- the command exists but cannot be run
  not_found = 127,      -- the command does not exist
  signal_base = 128,    -- 128 + N: killed by signal N
}

local UserError = {}
UserError.__index = UserError
UserError.__tostring = function(e) return e.message end

--- Raise a user error: `message` is one line naming the problem.
-- @param message string
-- @param code exit code (default 125)
function M.raise(message, code)
  error(setmetatable({ message = message, code = code or M.codes.lbox }, UserError), 0)
end

--- Is `e` an error raised by `raise`?
function M.is_user_error(e)
  return getmetatable(e) == UserError
end

--- Pass through the results of a call returning `value` or `nil, msg, errno`;
-- on failure raise a user error "what: msg".
function M.try(what, value, msg, ...)
  if value == nil or value == false then
    M.raise(what .. ": " .. tostring(msg))
  end
  return value, msg, ...
end

return M

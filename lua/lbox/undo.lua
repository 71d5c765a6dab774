--- Undo lists, Go's `defer` for resources: each step that takes something
-- (a cgroup, a directory, pipes, the terminal's mode, blocked signals)
-- pushes what gives it back, and one unwinding runs those in reverse, on
-- every way out. A to-be-closed value: `local undo <close> = undo.new()`.
local M = {}

local Undo = {}
Undo.__index = Undo

--- An empty list.
function M.new()
  return setmetatable({ n = 0 }, Undo)
end

--- Push `fn(...)`, named `name` for its error message. `fn` returns true,
-- or nil and a message, or raises; either way the unwinding goes on.
function Undo:push(name, fn, ...)
  if type(name) ~= "string" or type(fn) ~= "function" then error("an undo needs a name and a function", 2) end
  self.n = self.n + 1
  self[self.n] = { name = name, fn = fn, args = table.pack(...) }
end

--- The names pushed and not yet run, oldest first.
function Undo:names()
  local names = {}
  for i = 1, self.n do names[i] = self[i].name end
  return names
end

--- Run everything pushed, newest first, each once, every one even when
-- one fails. @return true | nil, "name: message" of the first failure
function Undo:unwind()
  local failure
  while self.n > 0 do
    local item = self[self.n]
    self[self.n], self.n = nil, self.n - 1
    local ok, result, msg = pcall(item.fn, table.unpack(item.args, 1, item.args.n))
    if not failure and (not ok or (result == nil and msg ~= nil)) then
      local why = not ok and result or msg
      failure = item.name .. ": " .. tostring(type(why) == "table" and why.message or why)
    end
  end
  if failure then return nil, failure end
  return true
end

Undo.__close = Undo.unwind

return M

--- A Lua REPL with `lbox` loaded, in the manner of lua.c: an expression
-- prints its values, an incomplete chunk asks for more lines, an error is
-- reported and the REPL goes on.
local M = {}

local function print_values(n, ...)
  if n == 0 then return end
  local out = {}
  for i = 1, n do out[i] = tostring((select(i, ...))) end
  print(table.concat(out, "\t"))
end

-- Compile `text`, preferring it as an expression; "incomplete" when the
-- chunk only lacks more lines.
local function compile(text, env)
  local chunk = load("return " .. text, "=repl", "t", env)
  if chunk then return chunk end
  local msg
  chunk, msg = load(text, "=repl", "t", env)
  if not chunk and msg:find("<eof>$") then return nil, "incomplete" end
  return chunk, msg
end

--- Read-eval-print until end of input.
-- @param env the environment chunks run in (default: globals plus `lbox`)
function M.run(env)
  env = env or setmetatable({ lbox = require "lbox" }, { __index = _G })
  print("lbox REPL (" .. _VERSION .. "): `lbox` is loaded; Ctrl-D leaves and removes its containers")
  local pending
  while true do
    io.stdout:write(pending and ">> " or "> ")
    io.stdout:flush()
    local line = io.stdin:read("l")
    if not line then break end
    local text = pending and pending .. "\n" .. line or line
    local chunk, msg = compile(text, env)
    if msg == "incomplete" then
      pending = text
    else
      pending = nil
      if not chunk then
        print(msg)
      else
        local results = table.pack(xpcall(chunk, debug.traceback))
        if results[1] then
          print_values(results.n - 1, table.unpack(results, 2, results.n))
        else
          print(tostring(results[2]))
        end
      end
    end
  end
  io.stdout:write("\n")
  return 0
end

return M

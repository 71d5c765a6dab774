-- A container whose PID 1 is a Lua function instead of a program: it runs in
-- the container (its namespaces, root and limits), in lbox's forked Lua state,
-- so it can use anything the recipe defined. Its result is the exit code.
--   lbox examples/lua_payload
local core = require "lbox.core"
local lbox = require "lbox"
local lfs = require "lfs"

local options = require "lbox.options"

if not options.command({
  name = "examples/lua_payload", synopsis = { "" },
  summary = "a container whose PID 1 is a Lua function of this recipe's",
  operands = { 0, 0 },
}, { ... }) then return 0 end

local greeting = "hello from a Lua function"

local status = lbox.run {
  hostname = "lua-inside",
  limits = { memory = 32 * 1024 * 1024 },
  command = function()
    local processes = 0
    for name in lfs.dir("/proc") do
      if name:match("^%d+$") then processes = processes + 1 end
    end
    local f = assert(io.open("/etc/hostname"))
    print(string.format("%s: pid %d on %s, %d process(es) in sight",
      greeting, core.getpid(), f:read("l"), processes))
    f:close()
    return 3
  end,
}
print("the function's result became the exit code: " .. status.exit_code)
return status.exit_code == 3 and 0 or 1

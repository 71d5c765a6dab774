-- PID 1 of spec/isolated's namespace: run the command given as arguments,
-- reap every orphan meanwhile (as init does on the host), and exit as the
-- command did.
local core = require "lbox.core"

local environment = {}
for entry in io.open("/proc/self/environ"):read("a"):gmatch("[^%z]+") do
  environment[#environment + 1] = entry
end

local command = assert(core.clone(0))
if command == 0 then
  core.execve("/bin/sh", { "sh", "-c", 'exec "$@"', "sh", table.unpack(arg) }, environment)
  core._exit(127)
end
while true do
  local pid, how, code = core.waitpid(-1)
  if pid == command then
    os.exit(how == "exited" and code or 128 + code)
  elseif not pid then
    os.exit(125)
  end
end

-- One command under three memory limits, and a table of how it fared.
--   lbox examples/matrix [COMMAND...]    (default: a 40 MiB allocation)
local core = require "lbox.core"
local lbox = require "lbox"

local options = require "lbox.options"

local opts, command = options.command({
  name = "examples/matrix", synopsis = { "[COMMAND...]" },
  summary = "one command under three memory limits (16, 64 and 256 MiB), and a table of how it fared",
}, { ... })
if not opts then return 0 end
if #command == 0 then command = { "dd", "if=/dev/zero", "of=/dev/null", "bs=40M", "count=1" } end
local null = assert(core.open("/dev/null", "w"))
local MIB = 1024 * 1024

print(string.format("%-8s %-6s %s", "memory", "exit", "result"))
for _, mib in ipairs { 16, 64, 256 } do
  local status = lbox.run {
    command = command,
    limits = { memory = mib * MIB, memory_swap = mib * MIB }, -- no swap: the limit is the limit
    stdio = { stdout = null, stderr = null },
  }
  local result = status.oom and "out of memory" or status.exit_code == 0 and "ok" or "failed"
  print(string.format("%-8s %-6d %s", mib .. "m", status.exit_code, result))
end
core.close(null)
return 0

-- lbox kill [-s SIGNAL] CONTAINER...: send a signal (default KILL) to PID 1.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local args = { ... }
local KILL = {
  name = "kill", synopsis = { "[-s SIGNAL] CONTAINER..." }, summary = "send a signal to containers",
  description = "Sends SIGNAL to each container's PID 1. As for any PID 1, a signal it has no handler for "
    .. "is ignored, except SIGKILL.",
  options = { { "signal", short = "s", value = "SIGNAL", help = "the signal, by name or number (default: KILL)" } },
}
local opts, first = options.command(KILL, args)
if first > #args then options.usage_error(KILL) end
local name = (opts.signal or "KILL"):upper():gsub("^SIG", "")
local signal = tonumber(name) or core["SIG" .. name]
if not signal then errors.raise(string.format("--signal: unknown signal %q", opts.signal)) end

for i = first, #args do
  local s = state.find(args[i])
  if s.status ~= "running" then
    errors.raise(string.format("cannot kill container %s: it is not running", args[i]), 1)
  end
  errors.try("cannot kill container " .. args[i], core.kill(s.pid, signal))
  print(args[i])
end
return 0

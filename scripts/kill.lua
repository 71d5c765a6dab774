-- lbox kill [-s SIGNAL] CONTAINER...: send a signal (default KILL) to PID 1.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, containers = options.command({
  name = "kill", synopsis = { "[-s SIGNAL] CONTAINER..." }, summary = "send a signal to containers",
  description = "Sends SIGNAL to each container's PID 1. As for any PID 1, a signal it has no handler for "
    .. "is ignored, except SIGKILL.",
  options = { { "signal", short = "s", value = "SIGNAL", help = "the signal, by name or number (default: KILL)" } },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local name = (opts.signal or "KILL"):upper():gsub("^SIG", "")
local signal = tonumber(name) or core["SIG" .. name]
if not signal then errors.raise(string.format("--signal: unknown signal %q", opts.signal)) end

for _, ref in ipairs(containers) do
  -- through a pidfd of the recorded process: never another that took its number
  local process = state.open_process(state.find(ref))
  if not process then errors.raise(string.format("cannot kill container %s: it is not running", ref), 1) end
  -- a frozen process takes no signal, SIGKILL included, until thawed
  if signal == core.SIGKILL then cgroups.thaw(state.find(ref).id) end
  local ok, msg = core.pidfd_send_signal(process, signal)
  core.close(process)
  errors.try("cannot kill container " .. ref, ok, msg)
  print(ref)
end
return 0

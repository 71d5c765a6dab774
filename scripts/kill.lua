-- lbox kill [-s SIGNAL] CONTAINER...: send a signal (default KILL) to PID 1.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local args = { ... }
local opts, first = options.parse({ { "signal", short = "s", value = "SIGNAL" } }, args)
if first > #args then errors.raise("usage: lbox kill [-s SIGNAL] CONTAINER...") end
local name = (opts.signal or "KILL"):upper():gsub("^SIG", "")
local signal = tonumber(name) or core["SIG" .. name]
if not signal then errors.raise(string.format("--signal: unknown signal %q", opts.signal)) end

for i = first, #args do
  -- through a pidfd of the recorded process: never another that took its number
  local process = state.open_process(state.find(args[i]))
  if not process then errors.raise(string.format("cannot kill container %s: it is not running", args[i]), 1) end
  local ok, msg = core.pidfd_send_signal(process, signal)
  core.close(process)
  errors.try("cannot kill container " .. args[i], ok, msg)
  print(args[i])
end
return 0

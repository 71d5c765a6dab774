-- lbox kill [-s SIGNAL] CONTAINER...: send a signal (default KILL) to PID 1.
local cgroups = require "lbox.cgroups"
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
  local s = state.find(args[i])
  if s.status ~= "running" then
    errors.raise(string.format("cannot kill container %s: it is not running", args[i]), 1)
  end
  -- a frozen process takes no signal, SIGKILL included, until thawed
  if signal == core.SIGKILL then cgroups.thaw(s.id) end
  errors.try("cannot kill container " .. args[i], core.kill(s.pid, signal))
  print(args[i])
end
return 0

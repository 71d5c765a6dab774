-- lbox stats [--no-stream] [CONTAINER...]: memory, CPU and processes of
-- running containers, from their cgroups (once, or every second).
local container = require "lbox.container"
local core = require "lbox.core"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, args = options.command({
  name = "stats", synopsis = { "[--no-stream] [CONTAINER...]" }, summary = "show containers' resource use",
  description = "Memory, CPU time and number of processes of running containers (or those named), from "
    .. "their cgroups; every second until interrupted.",
  options = { { "no-stream", help = "print once and exit" } },
}, { ... })
if not opts then return 0 end
local function targets()
  local list = {}
  if #args > 0 then
    for _, ref in ipairs(args) do list[#list + 1] = state.find(ref) end
  else
    for _, s in ipairs(state.list()) do if s.status == "running" then list[#list + 1] = s end end
  end
  return list
end

repeat
  print(string.format("%-12s  %-16s  %12s  %12s  %6s", "CONTAINER ID", "NAME", "MEM USAGE", "CPU TIME", "PIDS"))
  for _, s in ipairs(targets()) do
    local box <close> = container.attach(s) -- a descriptor of its PID 1, closed each round
    local stats = box and box:stats() or {}
    local function show(v, unit) return v and string.format("%.1f%s", v, unit) or "-" end
    print(string.format("%-12s  %-16s  %12s  %12s  %6s", s.id:sub(1, 12), s.name or "",
      show(stats.memory and stats.memory / 1048576, "MiB"), show(stats.cpu_usec and stats.cpu_usec / 1e6, "s"),
      stats.pids or "-"))
  end
  io.stdout:flush()
  if not opts["no-stream"] then core.poll({}, 1000) end
until opts["no-stream"]
return 0

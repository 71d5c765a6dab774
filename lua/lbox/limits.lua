--- The limits a container spec may set and the range of each, in one
-- table: lbox.spec checks against it, the CLI parses against it, and
-- lbox.cgroups converts with it. Whole numbers unless said otherwise;
-- `unlimited` is the value that lifts the limit.
local M = {}

M.RANGES = {
  -- docker's minimum: below it the runtime itself cannot start
  memory = { min = 6 * 1024 * 1024, max = math.maxinteger },
  -- memory and swap together, at least the memory limit
  memory_swap = { min = 1, max = math.maxinteger, unlimited = -1 },
  -- a positive number of CPUs, at most those online (checked by lbox.spec)
  cpus = { number = true },
  -- docker's --cpu-shares; cgroup v2's cpu.weight is 1..10000
  cpu_shares = { min = 2, max = 262144 },
  -- kernel list strings ("0-1,3"), of online CPUs and memory nodes
  cpuset_cpus = { list = true },
  cpuset_mems = { list = true },
  -- the kernel's PID_MAX_LIMIT
  pids = { min = 1, max = 4194304, unlimited = -1 },
}

-- cgroup v2's cpu.weight range
M.WEIGHT = { min = 1, max = 10000 }

--- Is `name` a limit a spec may set?
function M.known(name)
  return M.RANGES[name] ~= nil
end

--- docker's cpu shares as a cgroup v2 weight, linearly over both ranges
-- (the conversion crun and runc use).
function M.shares_to_weight(shares)
  local s, w = M.RANGES.cpu_shares, M.WEIGHT
  return w.min + ((shares - s.min) * (w.max - w.min)) // (s.max - s.min)
end

return M

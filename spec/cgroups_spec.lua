-- lbox.cgroups' planning: which files each limit becomes on this host's
-- cgroup version, checked without creating a group (the groups themselves
-- are limits_spec's, by their effect).
local cgroups = require "lbox.cgroups"

-- The writes as "controller/file=value" strings, in order.
local function plan(limits)
  local writes, field, msg = cgroups.plan(limits)
  assert.is_table(writes, tostring(field) .. ": " .. tostring(msg))
  local list = {}
  for i, w in ipairs(writes) do list[i] = w[1] .. "/" .. w[2] .. "=" .. w[3] end
  return list
end

local function version(controller)
  return select(2, cgroups.hierarchy(controller))
end

describe("lbox.cgroups.plan", function()
  it("plans nothing for no limits", function()
    assert.are.same({}, plan {})
  end)

  it("writes memory before swap, with docker's default of as much swap as memory", function()
    local mib = 1024 * 1024
    local list = plan { memory = 64 * mib }
    if version("memory") == 2 then
      assert.are.same({ "memory/memory.max=" .. 64 * mib, "memory/memory.swap.max=" .. 64 * mib }, list)
      assert.are.same({ "memory/memory.max=" .. 64 * mib, "memory/memory.swap.max=max" },
        plan { memory = 64 * mib, memory_swap = -1 })
    else
      assert.are.equal("memory/memory.limit_in_bytes=" .. 64 * mib, list[1])
      -- memsw when the kernel accounts swap: memory and swap together
      if list[2] then assert.are.equal("memory/memory.memsw.limit_in_bytes=" .. 128 * mib, list[2]) end
    end
  end)

  it("turns CPUs into a quota per 100 ms period, shares into v2 weights", function()
    if version("cpu") == 2 then
      assert.are.same({ "cpu/cpu.max=150000 100000" }, plan { cpus = 1.5 })
      assert.are.same({ "cpu/cpu.weight=39" }, plan { cpu_shares = 1024 })
    else
      assert.are.same({ "cpu/cpu.cfs_period_us=100000", "cpu/cpu.cfs_quota_us=150000" }, plan { cpus = 1.5 })
      assert.are.same({ "cpu/cpu.shares=1024" }, plan { cpu_shares = 1024 })
    end
    -- the kernel's minimum quota is 1 ms
    assert.matches("1000", plan({ cpus = 0.001 })[version("cpu") == 2 and 1 or 2])
  end)

  it("maps the whole range of shares onto the whole range of weights", function()
    assert.are.same({ 1, 39, 10000 },
      { cgroups.shares_to_weight(2), cgroups.shares_to_weight(1024), cgroups.shares_to_weight(262144) })
  end)

  it("fills a v1 cpuset's other half from the parent's, and writes pids", function()
    local list = plan { cpuset_cpus = "0" }
    assert.are.equal("cpuset/cpuset.cpus=0", list[1])
    if version("cpuset") == 1 then assert.matches("^cpuset/cpuset.mems=%d", list[2]) end
    assert.are.same({ "pids/pids.max=max" }, plan { pids = -1 })
    assert.are.same({ "pids/pids.max=50" }, plan { pids = 50 })
  end)
end)

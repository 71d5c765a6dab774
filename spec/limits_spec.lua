-- Resource limits, each checked by its effect inside a real container (and
-- the file the kernel holds), on whichever cgroup version the host has.
local helper = require "helper"
local lfs = require "lfs"

local PROBE = helper.PROBE
local V2 = helper.read_file("/sys/fs/cgroup/cgroup.controllers") ~= nil

local function probe(flags, files)
  local args = { "run", table.unpack(helper.WITH_FIXTURES) }
  for _, flag in ipairs(flags) do args[#args + 1] = flag end
  args[#args + 1] = PROBE
  for _, file in ipairs(files or {}) do args[#args + 1] = file end
  local r = helper.lbox_run(args)
  assert.are.equal(0, r.code, r.err)
  local seen = {}
  for key, value in r.out:gmatch("([%w._]+)=([^\n]*)") do seen[key] = value end
  return seen
end

describe("lbox run limits", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  describe("--memory", function()
    it("kills a command that goes over it: lbox says so and exits 137", function()
      local r = helper.lbox_run { "run", "-m", "50m", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1" }
      assert.are.equal(137, r.code)
      assert.matches("lbox: container %x+ was killed: out of memory %(limit 50m%)", r.err)
    end)

    it("lets a command under it run", function()
      local r = helper.lbox_run { "run", "--memory", "100m", "dd", "if=/dev/zero", "of=/dev/null", "bs=20M", "count=1" }
      assert.are.equal(0, r.code, r.err)
      assert.is_nil(r.err:find("out of memory"))
    end)

    it("accepts mydocker's -mem and sets the limit in bytes", function()
      local file = V2 and "memory.max" or "memory.limit_in_bytes"
      assert.are.equal(tostring(64 * 1024 * 1024), probe({ "-mem", "64m" }, { file })["cgroup." .. file])
    end)

    it("sets swap as docker does: total given, or as much as memory by default", function()
      local file = V2 and "memory.swap.max" or "memory.memsw.limit_in_bytes"
      local mib = 1024 * 1024
      local given = probe({ "-m", "64m", "--memory-swap", "96m" }, { file })["cgroup." .. file]
      local default = probe({ "-m", "64m" }, { file })["cgroup." .. file]
      local unlimited = probe({ "-m", "64m", "--memory-swap", "-1" }, { file })["cgroup." .. file]
      if V2 then
        assert.are.same({ tostring(32 * mib), tostring(64 * mib), "max" }, { given, default, unlimited })
      else
        assert.are.same({ tostring(96 * mib), tostring(128 * mib) }, { given, default })
        assert.is_true(tonumber(unlimited) > 2 ^ 60)
      end
    end)
  end)

  -- Needs a swap device: `make test-v2` gives its guest one (zram); `make
  -- test` leaves this out (--exclude-tags=swap) and says so.
  it("--memory-swap decides whether a container may swap #swap", function()
    local swaps = helper.read_file("/proc/swaps")
    assert.is_true(select(2, swaps:gsub("\n", "")) > 1, "this machine has no swap")
    local big = { "dd", "if=/dev/zero", "of=/dev/null", "bs=60M", "count=1" }
    local no_swap = helper.lbox_run { "run", "-m", "30m", "--memory-swap", "30m", table.unpack(big) }
    assert.are.equal(137, no_swap.code, no_swap.err)
    local swap = helper.lbox_run { "run", "-m", "30m", "--memory-swap", "200m", table.unpack(big) }
    assert.are.equal(0, swap.code, swap.err)
  end)

  describe("--cpus", function()
    it("writes the quota and throttles a busy loop", function()
      local files = V2 and { "cpu.max" } or { "cpu.cfs_quota_us", "cpu.cfs_period_us" }
      local seen = probe({ "--cpus", "1.5" }, files)
      if V2 then
        assert.are.equal("150000 100000", seen["cgroup.cpu.max"])
      else
        assert.are.same({ "150000", "100000" }, { seen["cgroup.cpu.cfs_quota_us"], seen["cgroup.cpu.cfs_period_us"] })
      end
      local r = helper.lbox_run { "run", "-v", helper.fixtures .. ":/fixtures:ro", "--cpus", "0.1", "sh", "-c",
        "timeout 1 sh -c 'while :; do :; done'; " .. PROBE .. " cpu.stat" }
      assert.are.equal(0, r.code, r.err)
      local throttled = tonumber(r.out:match("nr_throttled (%d+)"))
      assert.is_true(throttled and throttled > 0, r.out)
    end)

    it("accepts mydocker's -cpu as a percentage of one CPU", function()
      local file = V2 and "cpu.max" or "cpu.cfs_quota_us"
      local value = probe({ "-cpu", "50" }, { file })["cgroup." .. file]
      assert.are.equal(V2 and "50000 100000" or "50000", value)
    end)
  end)

  it("--cpu-shares sets the relative weight", function()
    local file = V2 and "cpu.weight" or "cpu.shares"
    local value = probe({ "--cpu-shares", "512" }, { file })["cgroup." .. file]
    -- v2: 1 + (512 - 2) * 9999 / 262142, as crun and runc convert
    assert.are.equal(V2 and "20" or "512", value)
  end)

  it("--cpu-shares divides a contended CPU by weight", function()
    -- two containers on CPU 0, weights 1024 and 256, counting for the same
    -- 2 s: each says it is ready, and both start when the spec says go
    local sync = helper.sh("mktemp -d").out:match("^(%S+)")
    finally(function() helper.sh("rm -rf " .. sync) end)
    local count = "i=0; trap 'echo $i; exit 0' TERM; while :; do i=$((i+1)); done"
    local function contender(shares)
      return helper.start { helper.lbox, "run", "-v", sync .. ":/sync", "--cpuset-cpus", "0",
        "--cpu-shares", tostring(shares), "-e", "COUNT=" .. count, "sh", "-c", "touch /sync/ready-" .. shares
          .. '; while [ ! -e /sync/go ]; do sleep 0.01; done; exec timeout -s TERM 2 sh -c "$COUNT"' }
    end
    local heavy, light = contender(1024), contender(256)
    assert.is_true(helper.eventually(function()
      return lfs.attributes(sync .. "/ready-1024") and lfs.attributes(sync .. "/ready-256")
    end, 60))
    helper.write_file(sync .. "/go", "")
    local heavy_count = tonumber(helper.finish(heavy, 30).out)
    local light_count = tonumber(helper.finish(light, 30).out)
    assert.is_true(heavy_count and light_count and light_count > 0, "no counts")
    -- 4:1 expected; the scheduler's granularity blurs it
    assert.is_true(heavy_count / light_count > 2.5, heavy_count .. " vs " .. light_count)
  end)

  it("--cpuset-cpus pins the container, and --cpuset-mems is accepted", function()
    local seen = probe({ "--cpuset-cpus", "1", "--cpuset-mems", "0" }, { "cpuset.cpus", "cpuset.mems" })
    assert.are.equal("1", seen.cpus_allowed)
    assert.are.same({ "1", "0" }, { seen["cgroup.cpuset.cpus"], seen["cgroup.cpuset.mems"] })
    assert.are.equal("0", probe({ "--cpuset-cpus", "0" }).cpus_allowed)
  end)

  it("--pids-limit stops a fork bomb", function()
    local bomb = "for i in $(seq 60); do sleep 3 & done; echo survived"
    local limited = helper.lbox_run { "run", "--pids-limit", "10", "sh", "-c", bomb }
    assert.are_not.equal(0, limited.code)
    assert.is_nil(limited.out:find("survived"))
    assert.matches("fork", limited.err:lower())
    local free = helper.lbox_run { "run", "sh", "-c", "for i in $(seq 60); do sleep 0.1 & done; wait; echo survived" }
    assert.are.same({ 0, "survived\n" }, { free.code, free.out })
  end)

  it("removes the container's cgroup on every way out", function()
    -- normal exit, failed exec, a signal, OOM, a failed setup step: each
    -- with its exit code, then no cgroup left
    local dir = os.tmpname()
    os.remove(dir)
    assert(lfs.mkdir(dir))
    finally(function() lfs.rmdir(dir) end)
    for _, case in ipairs {
      { 0, { "run", "-m", "20m", "true" } },
      { 127, { "run", "-m", "20m", "--pids-limit", "5", "/nonexistent" } },
      { 137, { "run", "-m", "20m", "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1" } },
      { 125, { "run", "-m", "20m", "-v", dir .. ":/etc/passwd", "true" } },
    } do
      local r = helper.lbox_run(case[2])
      assert.are.equal(case[1], r.code, table.concat(case[2], " ") .. ": " .. r.err)
      assert.are.same({}, helper.container_cgroups(), table.concat(case[2], " "))
    end
    -- PID 1 killed (a signal sent inside its namespace would not reach
    -- it), and lbox sent SIGTERM, passed on to the container
    local core = require "lbox.core"
    local proc = helper.start { helper.lbox, "run", "-m", "20m", "sh", "-c", "echo ready $(hostname); sleep 30 & wait" }
    local id = helper.read_until(proc.out_fd, "ready %x+\n"):match("ready (%x+)")
    assert.are.equal(0, helper.lbox_run({ "kill", id }).code)
    assert.are.equal(128 + core.SIGKILL, helper.finish(proc, 10).code)
    assert.are.same({}, helper.container_cgroups(), "after lbox kill")
    proc = helper.start { helper.lbox, "run", "-m", "20m", "sh", "-c", "trap 'exit 3' TERM; echo ready; sleep 30 & wait" }
    helper.read_until(proc.out_fd, "ready")
    core.kill(proc.pid, core.SIGTERM)
    assert.are.equal(3, helper.finish(proc, 10).code)
    assert.are.same({}, helper.container_cgroups(), "after SIGTERM")
  end)

  it("leaves nothing behind when lbox gets SIGTERM at any moment of the start", function()
    -- before its first step lbox has taken nothing and dies of it (143);
    -- from then on the signal waits for the container, which ends (0)
    local core = require "lbox.core"
    for delay = 0, 40, 2 do
      local proc = helper.start { helper.lbox, "run", "-m", "20m", "true" }
      helper.sleep(delay / 1000)
      core.kill(proc.pid, core.SIGTERM)
      local code = helper.finish(proc, 10).code
      assert.is_true(code == 0 or code == 128 + core.SIGTERM, "exit code " .. code .. " after " .. delay .. " ms")
      assert.are.same({}, helper.container_cgroups(), "after " .. delay .. " ms")
      assert.are.same({}, helper.snapshot().containers, "after " .. delay .. " ms")
    end
  end)

  it("sweeps the cgroups and directories of containers whose lbox was killed", function()
    local core = require "lbox.core"
    local proc = helper.start { helper.lbox, "run", "-m", "20m", "--pids-limit", "50", "sh", "-c", "echo ready; exec sleep 30" }
    helper.read_until(proc.out_fd, "ready")
    assert.are.equal(V2 and 1 or 2, #helper.container_cgroups())
    core.kill(proc.pid, core.SIGKILL)
    assert.are.equal(137, helper.finish(proc, 10).code)
    -- the container dies with its lbox; its cgroups and directory stay
    local groups = helper.container_cgroups()
    assert.is_true(#groups > 0)
    assert.is_true(helper.eventually(function()
      for _, dir in ipairs(groups) do
        if helper.read_file(dir .. "/cgroup.procs") ~= "" then return false end
      end
      return true
    end))
    assert.are.equal(1, #helper.snapshot().containers)
    local r = helper.lbox_run { "run", "-m", "20m", "true" }
    assert.are.equal(0, r.code, r.err)
    assert.are.same({}, helper.container_cgroups())
    assert.are.same({}, helper.snapshot().containers)
  end)

  it("sweeps whatever another cgroup parent's lbox is doing (another installation, another spec run)", function()
    local core = require "lbox.core"
    local cgroups = require "lbox.cgroups"
    local proc = helper.start { helper.lbox, "run", "--pids-limit", "50", "sh", "-c", "echo ready; exec sleep 30" }
    helper.read_until(proc.out_fd, "ready")
    core.kill(proc.pid, core.SIGKILL)
    assert.are.equal(137, helper.finish(proc, 10).code)
    assert.is_true(helper.eventually(function()
      for _, dir in ipairs(helper.container_cgroups()) do
        if helper.read_file(dir .. "/cgroup.procs") ~= "" then return false end
      end
      return true
    end))
    -- a neighbour's lbox in the middle of a start holds its lock shared
    lfs.mkdir("/run/lbox")
    local neighbour_path = cgroups.lock_path(cgroups.parent .. "-neighbour")
    local neighbour = assert(core.open(neighbour_path, "create"))
    finally(function()
      core.close(neighbour)
      os.remove(neighbour_path)
    end)
    assert.is_true(core.flock(neighbour, "shared"))
    local r = helper.lbox_run { "run", "--pids-limit", "50", "true" }
    assert.are.equal(0, r.code, r.err)
    assert.are.same({}, helper.container_cgroups())
    assert.are.same({}, helper.snapshot().containers)
  end)
end)

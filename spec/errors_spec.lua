-- Bad input: one line on stderr naming the problem, exit 125 for lbox's own
-- errors, and nothing left behind.
local helper = require "helper"

local function assert_refused(args, pattern, code)
  local r = helper.lbox_run(args)
  local what = table.concat(args, " ")
  assert.are.equal(code or 125, r.code, what .. ": " .. r.err)
  assert.are.equal("", r.out, what)
  assert.matches("^lbox: error: [^\n]+\n$", r.err, what)
  assert.matches(pattern, r.err, what)
end

describe("bad input", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("names unknown options and missing values", function()
    assert_refused({ "run", "--bogus", "true" }, 'unknown flag "%-%-bogus"')
    assert_refused({ "run", "-x", "true" }, 'unknown flag "%-x"')
    assert_refused({ "run", "-m" }, 'flag "%-m" needs a value')
    assert_refused({ "run", "--tty=yes", "true" }, 'flag "%-%-tty" takes no value')
  end)

  it("asks for a command", function()
    assert_refused({ "run" }, "requires a command")
    assert_refused({ "run", "-it" }, "requires a command")
  end)

  it("refuses bad sizes", function()
    assert_refused({ "run", "-m", "100x", "true" }, '%-%-memory: invalid size "100x"')
    assert_refused({ "run", "-m", "-5m", "true" }, '%-%-memory: invalid size "%-5m"')
    assert_refused({ "run", "-m", "1m", "true" }, "%-%-memory: 1m is below the minimum of 6m")
    assert_refused({ "run", "--memory-swap", "1g", "true" }, "%-%-memory%-swap: needs a memory limit")
    assert_refused({ "run", "-m", "100m", "--memory-swap", "50m", "true" },
      "%-%-memory%-swap: 50m is less than the memory limit %(100m%): it counts memory and swap together")
  end)

  it("refuses bad CPU settings", function()
    local online = helper.read_file("/sys/devices/system/cpu/online")
    local last = tonumber(online:match("(%d+)%s*$"))
    assert_refused({ "run", "--cpus", "0", "true" }, '%-%-cpus: invalid number "0"')
    assert_refused({ "run", "--cpus", "1,5", "true" }, '%-%-cpus: invalid number "1,5"')
    assert_refused({ "run", "--cpus", tostring(last + 2), "true" }, "%-%-cpus: %d+ is more than the %d+ CPUs")
    assert_refused({ "run", "--cpus", "1", "--cpu", "50", "true" }, "give one")
    assert_refused({ "run", "--cpu-shares", "1", "true" }, "%-%-cpu%-shares: invalid value")
    assert_refused({ "run", "--cpuset-cpus", "a-b", "true" }, '%-%-cpuset%-cpus: invalid cpu list "a%-b"')
    assert_refused({ "run", "--cpuset-cpus", "3-1", "true" }, "goes backwards")
    assert_refused({ "run", "--cpuset-cpus", tostring(last + 1), "true" }, "CPU %d+ is not online")
    assert_refused({ "run", "--cpuset-mems", "7", "true" }, "memory node 7 is not online")
    assert_refused({ "run", "--pids-limit", "many", "true" }, "%-%-pids%-limit: invalid value")
  end)

  it("refuses bad names and paths", function()
    assert_refused({ "run", "--hostname", "bad name", "true" }, '%-%-hostname: "bad name" is not a valid hostname')
    assert_refused({ "run", "--hostname", string.rep("h", 65), "true" }, "not a valid hostname")
    assert_refused({ "run", "-w", "relative", "true" }, "%-%-workdir: must be an absolute path")
    assert_refused({ "run", "-e", "=x", "true" }, "the variable needs a name")
  end)

  it("reports a command that cannot run with docker's codes", function()
    assert_refused({ "run", "busybox", "no-such-command" }, "executable file not found", 127)
    assert_refused({ "run", "no-such-command" }, "no image no%-such%-command in the store, and no command", 125)
    assert_refused({ "run", "-v", helper.fixtures .. ":/fixtures:ro", "/fixtures/not-executable.txt" },
      "permission denied", 126)
  end)

  it("refuses an unknown recipe", function()
    local r = helper.lbox_run { "no-such-recipe" }
    assert.are.equal(125, r.code)
    assert.matches('^lbox: error: no recipe "no%-such%-recipe"', r.err)
  end)

  it("needs root", function()
    -- as nobody, from a copy nobody can reach
    local copy, remove_copy = helper.world_readable_copy()
    local r = helper.exec { "/bin/sh", "-c", 'cd "$0" && exec /usr/bin/setpriv --reuid=65534 --regid=65534 '
      .. '--clear-groups ./lbox run true', copy }
    remove_copy()
    assert.are.equal(125, r.code)
    assert.matches("^lbox: error: lbox needs root", r.err)
  end)

  -- Run lbox with `args` where the host's cgroups offer only `controllers`:
  -- v2, a cgroup namespace rooted in a group of the test's own whose parent
  -- (also the test's) delegates just those; v1, a mount namespace of the
  -- test's own with the other hierarchies unmounted.
  local function with_only_controllers(controllers, args)
    local lbox = helper.lbox .. " " .. table.concat(args, " ")
    local script
    if helper.read_file("/sys/fs/cgroup/cgroup.controllers") then
      local enable = controllers == "" and "" or "+" .. controllers:gsub(" ", " +")
      script = string.format([[
        outer=/sys/fs/cgroup/lbox-spec-controllers
        mkdir -p $outer/inner || exit 90
        echo '%s' > $outer/cgroup.subtree_control || exit 91
        sh -c "echo \$\$ > $outer/inner/cgroup.procs && exec unshare -C -m --propagation private sh -c \
          'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && %s'"
        rc=$?
        rmdir $outer/inner $outer
        exit $rc
      ]], enable, lbox)
    else
      script = string.format([[
        exec unshare -m --propagation private sh -c '
          for dir in /sys/fs/cgroup/*; do
            case " %s " in *" ${dir##*/} "*) ;; *) umount "$dir" 2>/dev/null ;; esac
          done
          %s']], controllers, lbox)
    end
    return helper.exec { "/bin/sh", "-c", script }
  end

  it("names a cgroup controller the host lacks", function()
    local r = with_only_controllers("memory", { "run", "--pids-limit", "5", "true" })
    assert.are.equal(125, r.code, r.err)
    assert.matches('^lbox: error: %-%-pids%-limit: needs the cgroup controller "pids", which this host does not provide', r.err)
    assert.are.equal(1, select(2, r.err:gsub("\n", "")))
    -- the flag the user gave, not another of the same controller
    r = with_only_controllers("memory", { "run", "--cpuset-mems", "0", "true" })
    assert.are.equal(125, r.code, r.err)
    assert.matches('^lbox: error: %-%-cpuset%-mems: needs the cgroup controller "cpuset"', r.err)
  end)

  it("reports a cgroup hierarchy it may not write to", function()
    local dir = helper.read_file("/sys/fs/cgroup/cgroup.controllers") and "/sys/fs/cgroup" or "/sys/fs/cgroup/memory"
    local r = helper.exec { "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
      "mount -o remount,bind,ro " .. dir .. " && exec \"$0\" run -m 50m true", helper.lbox }
    assert.are.equal(125, r.code, r.err)
    assert.matches("^lbox: error: cannot create cgroups in [^\n]*Read%-only file system[^\n]*read%-only%?\n$", r.err)
  end)

  it("says what to do when no cgroup controller is usable", function()
    local r = with_only_controllers("", { "run", "-m", "50m", "true" })
    assert.are.equal(125, r.code, r.err)
    -- v2: enable controllers in subtree_control; v1: mount them
    assert.matches("^lbox: error: [^\n]*cgroup[^\n]*/sys/fs/cgroup", r.err)
    assert.are.equal(1, select(2, r.err:gsub("\n", "")))
  end)
end)

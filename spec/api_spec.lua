-- The Lua API: a container is a value with start, wait, kill and destroy.
local core = require "lbox.core"
local errors = require "lbox.errors"
local helper = require "helper"
local lbox = require "lbox"

-- Wait until `path` exists inside a running container: its command is ready.
local function until_exists(box, path)
  return helper.eventually(function() return box:exec({ "test", "-e", path }).exit_code == 0 end)
end

describe("lbox API", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("destroys a running container with everything it holds", function()
    local box = lbox.container { command = { "sh", "-c", "sleep 30 & sleep 30" }, limits = { memory = 64 * 1024 * 1024 } }
    assert.are.equal("created", box.state)
    box:start()
    assert.are.equal("running", box.state)
    assert.is_true(#helper.container_cgroups() > 0)
    assert.is_true(box:destroy())
    assert.are.equal("exited", box.state)
    assert.are.same({ "killed", core.SIGKILL }, { box.status.how, box.status.code })
    assert.are.same({}, helper.container_cgroups())
  end)

  it("destroys a paused container: its undo thaws the group before ending PID 1", function()
    local box = lbox.container({ command = { "sleep", "30" }, accounting = true }):start()
    finally(function()
      if box.cgroup then box.cgroup:freeze(false) end
      box:destroy()
    end)
    assert.is_true(box.cgroup:freeze(true))
    assert.is_true(box.cgroup:frozen())
    assert.is_true(box:destroy())
    assert.are.same({ "killed", core.SIGKILL }, { box.status.how, box.status.code })
    assert.are.same({}, helper.container_cgroups())
  end)

  it("runs a spec to its end and reports the status", function()
    local status = lbox.run { command = { "sh", "-c", "exit 3" }, hostname = "api" }
    assert.are.same({ 3, "exited", false }, { status.exit_code, status.how, status.oom or false })
  end)

  it("sends signals to PID 1", function()
    local box = lbox.container { command = { "sh", "-c", "trap 'exit 4' USR1; touch /ready; while :; do sleep 0.05; done" } }
    box:start()
    assert.is_true(until_exists(box, "/ready"))
    assert.is_true(box:kill(core.SIGUSR1))
    assert.are.equal(4, box:wait().exit_code)
    assert.is_nil(box:kill(core.SIGUSR1))
  end)

  it("checks the spec before anything exists, naming the field", function()
    local T = { "true" }
    for _, case in ipairs {
      { "nope", "container spec must be a table" },
      { {}, "^command: a command to run is required" },
      { { command = "sh" }, "^command: a command to run is required" },
      { { command = { 1 } }, "^command: item 1 is not a string" },
      { { command = T, hostname = "a b" }, "^hostname: " },
      { { command = T, id = "xyz" }, "^id: must be 64 lowercase hex digits" },
      { { command = T, namespaces = { "time" } }, '^namespaces: unknown namespace "time"' },
      { { command = T, limits = { memroy = 1 } }, '^limits: unknown limit "memroy"' },
      { { command = T, read_onyl = true }, "^read_onyl: unknown field" },
      { { command = T, limits = { memory = 1 } }, "^limits.memory: 1b is below the minimum of 6m" },
      { { command = T, limits = { memory = 1.5 } }, "^limits.memory: 1.5 must be a whole number" },
      { { command = T, limits = { memory_swap = 10 ^ 9 } }, "^limits.memory_swap: needs a memory limit" },
      { { command = T, limits = { cpus = 1000 } }, "^limits.cpus: 1000 is more than" },
      { { command = T, limits = { cpu_shares = 1 } }, "^limits.cpu_shares: " },
      { { command = T, limits = { cpuset_cpus = "x" } }, "^limits.cpuset_cpus: invalid cpu list" },
      { { command = T, limits = { pids = 0 } }, "^limits.pids: " },
      { { command = T, workdir = "tmp" }, "^workdir: must be an absolute path" },
      { { command = T, env = { [1] = "A=1" } }, "^env: " },
      { { command = T, image = "a b" }, '^image: "a b" is not a valid image name' },
      { { command = T, image = "busybox", rootfs = "/" }, "^rootfs: give an image or a rootfs, not both" },
      { { command = T, rootfs = "relative" }, "^rootfs: must be an absolute path" },
      { { command = T, volumes = { { host = "rel", target = "/x" } } }, "^volumes: volume 1: host must be" },
      { { command = T, volumes = { { host = "/tmp", target = "x" } } }, "^volumes: volume 1: target must be" },
      { { command = T, tmpfs = { "work" } }, "^tmpfs: mount 1: target must be" },
      { { command = T, stdio = { stdout = "x" } }, "^stdio: stdout must be a file descriptor" },
      { { command = T, stdio = { stdlog = 1 } }, '^stdio: unknown stream "stdlog"' },
    } do
      local ok, err = pcall(lbox.container, case[1])
      assert.is_false(ok)
      assert.matches(case[2], tostring(err))
    end
  end)

  it("documents every step, in order, in lua/API.md and the README", function()
    local doc = assert(helper.read_file("lua/API.md"))
    local function names(text)
      local list = {}
      for name in assert(text, "paragraph not found"):gmatch("`([%w_]+)`") do list[#list + 1] = name end
      return list
    end
    local function step_names(steps)
      local list = {}
      for i, step in ipairs(steps) do list[i] = step[1] end
      return list
    end
    assert.are.same(step_names(lbox.start_steps), names(doc:match("Start steps %(in lbox%) get the container: (.-)\n\n")))
    assert.are.same(step_names(lbox.init_steps), names(doc:match("as seen before `pivot_root`: (.-)\n\n")))
    local readme = assert(helper.read_file("README.md"))
    assert.are.same(step_names(lbox.start_steps), names(readme:match("`start_steps` %(lbox's side%): (.-)\n%-")))
    assert.are.same(step_names(lbox.init_steps),
      names(readme:match("`init_steps` %(the container's side, after the clone%): (.-)\n\n")))
  end)

  it("documents the spec's fields and limits in lua/API.md, as the code knows them", function()
    local block = assert(helper.read_file("lua/API.md"):match("\n## The spec\n\n```lua\n(.-)\n```"))
    -- without comments and strings, the outer table's own names, then the limits table's
    local code = {}
    for line in block:gmatch("[^\n]+") do code[#code + 1] = (line:gsub("%-%-.*$", ""):gsub('"[^"]*"', '""')) end
    local outer = assert(table.concat(code, "\n"):match("^%s*(%b{})%s*$")):sub(2, -2)
    local function names(text)
      local list = {}
      for name in text:gsub("%b{}", "{}"):gmatch("([%a_]+)%s*=") do list[#list + 1] = name end
      return list
    end
    local fields = names(outer)
    local limits = names(assert(outer:match("%f[%w_]limits%s*=%s*(%b{})")):sub(2, -2)) -- not ulimits
    local spec = require "lbox.spec"
    local ranges = require("lbox.limits").RANGES
    local known_limits = {}
    for name in pairs(ranges) do known_limits[#known_limits + 1] = name end
    table.sort(fields)
    table.sort(limits)
    table.sort(known_limits)
    local known_fields = table.move(spec.FIELDS, 1, #spec.FIELDS, 1, {})
    table.sort(known_fields)
    assert.are.same(known_fields, fields)
    assert.are.same(known_limits, limits)
  end)

  it("lists every function of lbox.core in lua/API.md", function()
    local section = assert(helper.read_file("lua/API.md"):match("\n## The core\n(.-)\n## ") or
      helper.read_file("lua/API.md"):match("\n## The core\n(.*)$"))
    local listed = {}
    for name in section:gmatch("`([%w_]+)`") do listed[name] = true end
    local missing = {}
    for name, value in pairs(core) do
      if type(value) == "function" and not listed[name] then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("in the host's cgroup namespace, shows the host's hierarchy read-only and leaves its options alone", function()
    local mountinfo = helper.read_file("/proc/self/mountinfo")
    local r, w = core.pipe()
    local box = lbox.container { namespaces = { "uts", "pid", "mount", "ipc" },
      command = { "sh", "-c", "grep ' /sys/fs/cgroup ' /proc/self/mountinfo; touch /sys/fs/cgroup/x 2>&1; true" } }
    box.spec.stdio.stdout = w
    box:start()
    core.close(w)
    assert.are.equal(0, box:wait().exit_code)
    local out = core.read(r, 65536)
    core.close(r)
    assert.matches(" ro[,%s]", out)
    assert.matches("Read%-only file system", out)
    -- a cgroup2 mount from the host's namespace would reset nsdelegate for all
    assert.are.same({}, helper.changed_lines(mountinfo, helper.read_file("/proc/self/mountinfo")))
  end)

  it("lets a recipe add steps on both sides of the handoff", function()
    local seen = {}
    local box = lbox.container { command = { "cat", "/etc/motd" } }
    box:after("cgroup", "note", function(c) seen.start_step = c.id end)
    box:before("pivot_root", "motd", function(ctx)
      local f = assert(io.open(ctx.spec.root.path .. "/etc/motd", "w"))
      f:write("written before pivot_root\n")
      f:close()
    end)
    local names = table.concat(box:steps(), " ")
    assert.matches("cgroup note pipes", names)
    assert.matches("mask_paths motd pivot_root", names)
    -- the lists of other containers are untouched
    assert.is_nil(table.concat(lbox.container({ command = { "true" } }):steps(), " "):find("motd"))
    local r, w = core.pipe()
    box.spec.stdio.stdout = w
    box:start()
    core.close(w)
    assert.are.equal(0, box:wait().exit_code)
    assert.are.equal("written before pivot_root\n", core.read(r, 100))
    core.close(r)
    assert.are.equal(box.id, seen.start_step)
    assert.has_error(function() box:before("pivot_root", "late", function() end) end,
      "steps can only change before start")
    assert.has_error(function() lbox.container({ command = { "true" } }):before("nope", "x", function() end) end)
  end)

  it("gives back what the steps took, in reverse, when a later step fails", function()
    local function blocked_signals()
      return helper.read_file("/proc/self/status"):match("SigBlk:%s*(%x+)")
    end
    local blocked = blocked_signals()
    local box = lbox.container { command = { "true" }, limits = { memory = 64 * 1024 * 1024 } }
    local taken
    box:after("clone", "fail", function(c)
      taken = c.undo:names()
      assert.is_true(#helper.container_cgroups() > 0)
      errors.raise("a step failed")
    end)
    local ok, err = pcall(box.start, box)
    assert.is_false(ok)
    assert.are.equal("a step failed", err.message)
    assert.are.same({ "unblock signals", "unlock the container's directory", "remove the container's directory",
                      "remove the cgroup", "close the pipes", "close the joined namespaces",
                      "end the container's process" }, taken)
    assert.are.equal("exited", box.state)
    assert.are.same({ "killed", core.SIGKILL }, { box.status.how, box.status.code })
    assert.are.equal(blocked, blocked_signals())
    assert.is_true(box:destroy()) -- nothing left to give back
    -- the leak check: no cgroup, process or directory left
  end)

  it("refuses, before anything exists, what the host cannot give", function()
    local cases = {
      { { command = { "true" }, rootfs = "/nonexistent" }, "^rootfs: /nonexistent is not a directory" },
      { { command = { "true" }, image = "lbox-spec-none" }, '^no image "lbox%-spec%-none"' },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(lbox.container, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err.message)
    end
    local ok, err = pcall(lbox.container, { command = { "true" }, rootfs = "/nonexistent" }, { rootfs = "--rootfs" })
    assert.is_false(ok)
    assert.matches("^%-%-rootfs: ", err.message)
  end)

  it("runs a Lua function as the container's PID 1", function()
    local status = lbox.run { hostname = "payload", command = function()
      local f = io.open("/etc/hostname")
      local name = f:read("l")
      f:close()
      return (core.getpid() == 1 and name == "payload") and 5 or 1
    end }
    assert.are.equal(5, status.exit_code)
    local failing = lbox.run { command = function() error("payload broke") end,
                               stdio = { stderr = assert(core.open("/dev/null", "w")) } }
    assert.are.equal(1, failing.exit_code)
  end)

  it("joins containers with pipes and gives them tmpfs mounts", function()
    local r, w = core.pipe()
    local out_r, out_w = core.pipe()
    local producer = lbox.container { command = { "seq", "1", "100" }, stdio = { stdout = w } }
    local consumer = lbox.container { command = { "sh", "-c", "wc -l; touch /scratch/ok && ls /scratch" },
      stdio = { stdin = r, stdout = out_w }, tmpfs = { "/scratch" }, read_only = true }
    producer:start()
    consumer:start()
    core.close(r); core.close(w); core.close(out_w)
    assert.are.equal(0, producer:wait().exit_code)
    assert.are.equal(0, consumer:wait().exit_code)
    assert.are.equal("100\nok\n", core.read(out_r, 100))
    core.close(out_r)
  end)

  it("joins the namespaces of another container", function()
    local first = lbox.container { hostname = "first", command = { "sleep", "30" } }:start()
    local r, w = core.pipe()
    local second = lbox.container { hostname = "second", join = { net = first, uts = first, pid = first.pid },
      command = { "sh", "-c", "hostname; readlink /proc/self/ns/net; ps -o comm | grep -c sleep" },
      stdio = { stdout = w } }
    second:start()
    core.close(w)
    assert.are.equal(0, second:wait().exit_code)
    local out = core.read(r, 200)
    core.close(r)
    local net = require("lfs").symlinkattributes("/proc/" .. first.pid .. "/ns/net", "target")
    assert.are.equal("first\n" .. net .. "\n1\n", out)
    first:destroy()
    for _, bad in ipairs { { mnt = first }, { net = first }, { net = "x" } } do
      assert.has_error(function() lbox.container { command = { "true" }, join = bad } end)
    end
  end)

  it("executes commands inside a running container and reports its use", function()
    local box = lbox.container { hostname = "target", command = { "sh", "-c", "echo there > /tmp/mark; sleep 30" },
      limits = { memory = 64 * 1024 * 1024, pids = 20 } }
    box:start()
    assert.is_true(until_exists(box, "/tmp/mark"))
    local r, w = core.pipe()
    -- exec's output goes where lbox's goes: point it at a pipe for the check
    local saved = core.dup2(1, 99)
    core.dup2(w, 1)
    local status = box:exec({ "sh", "-c", "hostname; cat /tmp/mark; echo $$; exit 6" }, { env = { X = "1" } })
    io.stdout:flush()
    core.dup2(saved, 1)
    core.close(saved); core.close(w)
    assert.are.equal(6, status.exit_code)
    local out = core.read(r, 200)
    core.close(r)
    assert.matches("^target\nthere\n%d+\n$", out)
    assert.is_true(tonumber(out:match("(%d+)\n$")) < 10, "not in the container's pid namespace")
    local ok, err = pcall(box.exec, box, { "no-such-command" })
    assert.is_false(ok)
    assert.matches("executable file not found", tostring(err))
    local stats = box:stats()
    assert.is_true(stats.memory > 0 and stats.memory < 64 * 1024 * 1024)
    assert.is_true(stats.pids >= 1)
    box:destroy()
    assert.are.same({ nil, "container is not running" }, { box:exec({ "true" }) })
  end)
end)

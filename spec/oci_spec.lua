-- lbox oci (lbox-oci): the OCI runtime command line on real containers,
-- a bundle made from the built-in busybox image: create/start/state/kill/
-- delete, run, exec, ps, pause/resume, the console socket, and bad input
-- (one line, exit 1, nothing left behind).
local cgroups = require "lbox.cgroups"
local cjson = require "cjson"
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"

local OCI = helper.root .. "/lbox-oci"

local function oci(...)
  return helper.exec({ OCI, "--root", helper.oci_root, ... })
end

-- A command whose container outlives it (create, run --detach): the
-- container keeps the command's stdout and stderr, so they go to files,
-- not to pipes that would stay open.
local function oci_detached(...)
  local argv = { OCI, "--root", helper.oci_root, ... }
  local out, err = os.tmpname(), os.tmpname()
  local quoted = {}
  for i, word in ipairs(argv) do quoted[i] = fs.quote(word) end
  local r = helper.sh(table.concat(quoted, " ") .. " >" .. out .. " 2>" .. err)
  r.out, r.err = helper.read_file(out), helper.read_file(err)
  os.remove(out)
  os.remove(err)
  return r
end

local function start_oci(...)
  return helper.start({ OCI, "--root", helper.oci_root, ... })
end

local function state_of(id)
  local r = oci("state", id)
  assert.are.equal(0, r.code, r.err)
  return cjson.decode(r.out)
end

local function status_of(id)
  return state_of(id).status
end

-- the one line of a runtime error, exit 1
local function assert_error(r, pattern)
  assert.are.equal(1, r.code, "exit code; stderr: " .. r.err)
  assert.matches(pattern, r.err)
  local _, lines = r.err:gsub("\n", "")
  assert.are.equal(1, lines, "one line expected: " .. r.err)
end

local bundle, shared

-- config.json of the bundle: lbox oci spec's default, with `edit(config)`
-- applied; the process writes to the host's `shared` directory at /shared
local function write_config(edit)
  os.remove(bundle .. "/config.json")
  local r = oci("spec", "--bundle", bundle)
  assert.are.equal(0, r.code, r.err)
  local config = cjson.decode(helper.read_file(bundle .. "/config.json"))
  config.process.terminal = false
  config.root.readonly = false
  table.insert(config.mounts, { destination = "/shared", type = "bind", source = shared, options = { "rbind", "rw" } })
  if edit then edit(config) end
  helper.write_file(bundle .. "/config.json", cjson.encode(config))
  return config
end

local function command(script)
  return function(config) config.process.args = { "sh", "-c", script } end
end

describe("lbox oci", function()
  local before

  lazy_setup(function()
    -- the built-in image, made on first use, is the bundle's root
    assert.are.equal(0, helper.lbox_run({ "run", "true" }).code)
    bundle = assert(io.popen("mktemp -d /tmp/lbox-oci-bundle.XXXXXX")):read("l")
    shared = bundle .. "/shared"
    -- the image's rootfs is a link to its layer: what it holds is copied
    local r = helper.sh(string.format("cp -a %s/images/busybox/rootfs/ %s/rootfs && mkdir %s", helper.store, bundle,
      shared))
    assert.are.equal(0, r.code, r.err)
  end)

  lazy_teardown(function()
    fs.remove_tree(bundle)
  end)

  before_each(function()
    for name in fs.dir(shared) do os.remove(shared .. "/" .. name) end
    before = helper.snapshot()
  end)

  after_each(function()
    helper.assert_no_leaks(before)
  end)

  it("create leaves the process waiting; start lets it run; delete removes every trace", function()
    write_config(command("echo ran > /shared/ran; exec sleep 1000"))
    local pid_file = shared .. "/pid"
    local r = oci_detached("create", "--bundle", bundle, "--pid-file", pid_file, "c1")
    assert.are.equal(0, r.code, r.err)
    local state = state_of("c1")
    assert.are.equal("created", state.status)
    assert.are.equal("c1", state.id)
    assert.are.equal(bundle, state.bundle)
    assert.are.equal(tonumber(helper.read_file(pid_file)), state.pid)
    -- alive, in a pid namespace of its own, and not yet past the fifo
    assert.truthy(helper.read_file("/proc/" .. math.tointeger(state.pid) .. "/stat"))
    assert.is_nil(helper.read_file(shared .. "/ran"))
    r = oci("start", "c1")
    assert.are.equal(0, r.code, r.err)
    assert.is_true(helper.eventually(function() return helper.read_file(shared .. "/ran") == "ran\n" end))
    assert.are.equal("running", status_of("c1"))
    assert_error(oci("start", "c1"), "cannot start a container that is running")
    assert_error(oci("delete", "c1"), "cannot delete container c1 that is not stopped: running")
    -- sleep as PID 1 has no handler for TERM: KILL, by name
    r = oci("kill", "c1", "KILL")
    assert.are.equal(0, r.code, r.err)
    assert.is_true(helper.eventually(function() return status_of("c1") == "stopped" end))
    assert.is_nil(state_of("c1").pid)
    assert_error(oci("kill", "c1", "TERM"), "container c1 is not running")
    r = oci("delete", "c1")
    assert.are.equal(0, r.code, r.err)
    assert_error(oci("state", "c1"), "container c1 does not exist")
  end)

  it("run: in the foreground, its output and exit code, then nothing left", function()
    write_config(function(config)
      config.hostname = "oci-box"
      config.process.args = { "sh", "-c", "hostname; cat /proc/self/cgroup >/dev/null; exit 3" }
      config.process.env = { "PATH=/bin", "GREETING=hi there" }
    end)
    local r = oci("run", "--bundle", bundle, "r1")
    assert.are.equal(3, r.code, r.err)
    assert.are.equal("oci-box\n", r.out)
    write_config(command('echo "$GREETING" from $(pwd)'))
    local config = cjson.decode(helper.read_file(bundle .. "/config.json"))
    config.process.env = { "PATH=/bin", "GREETING=hi there" }
    config.process.cwd = "/tmp"
    helper.write_file(bundle .. "/config.json", cjson.encode(config))
    r = oci("run", "--bundle", bundle, "r1")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("hi there from /tmp\n", r.out)
  end)

  it("maps the config: read-only root, masked paths, rlimits, capabilities, sysctl, a tmpfs", function()
    helper.write_file(shared .. "/secret", "secret\n")
    write_config(function(config)
      table.insert(config.linux.maskedPaths, "/shared/secret")
      config.root.readonly = true
      config.process.rlimits = { { type = "RLIMIT_NOFILE", soft = 321, hard = 654 } }
      config.process.capabilities = { bounding = { "CAP_KILL" }, effective = { "CAP_KILL" }, permitted = { "CAP_KILL" } }
      config.linux.sysctl = { ["net.ipv4.ip_unprivileged_port_start"] = "99" }
      table.insert(config.mounts, { destination = "/scratch", type = "tmpfs", source = "tmpfs", options = { "size=1m" } })
      config.process.args = { "sh", "-c", "touch /x 2>/dev/null && echo root-writable; "
        .. "touch /scratch/y && echo tmpfs-writable; ulimit -n; ulimit -Hn; "
        .. "grep CapEff /proc/self/status; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
        .. "cat /shared/secret; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-read-only" }
    end)
    local r = oci("run", "--bundle", bundle, "m1")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("tmpfs-writable\n321\n654\nCapEff:\t0000000000000020\n99\nsys-read-only\n", r.out)
  end)

  it("exec, ps, pause and resume in a running container", function()
    write_config(function(config)
      config.hostname = "exec-box"
      config.process.args = { "sleep", "1000" }
    end)
    assert.are.equal(0, oci_detached("run", "--detach", "--bundle", bundle, "e1").code)
    assert.are.equal("running", status_of("e1"))
    local r = oci("exec", "--env", "WHO=exec", "e1", "sh", "-c", 'echo "$WHO in $(hostname)"; exit 4')
    assert.are.equal(4, r.code, r.err)
    assert.are.equal("exec in exec-box\n", r.out)
    helper.write_file(shared .. "/process.json", cjson.encode { args = { "id" }, cwd = "/", env = { "PATH=/bin:/usr/bin" },
                                                               user = { uid = 1000, gid = 1000 } })
    r = oci("exec", "--process", shared .. "/process.json", "e1")
    assert.are.equal(0, r.code, r.err)
    assert.matches("^uid=1000 gid=1000", r.out)
    r = oci("ps", "--format", "json", "e1")
    assert.are.equal(0, r.code, r.err)
    assert.are.same({ state_of("e1").pid }, cjson.decode(r.out))
    assert.are.equal(0, oci("pause", "e1").code)
    assert.are.equal("paused", status_of("e1"))
    assert_error(oci("exec", "e1", "true"), "cannot exec in a container that is paused")
    assert.are.equal(0, oci("resume", "e1").code)
    assert.are.equal("running", status_of("e1"))
    r = oci("list", "--quiet")
    assert.are.equal("e1\n", r.out)
    r = oci("delete", "--force", "e1")
    assert.are.equal(0, r.code, r.err)
  end)

  it("joins a namespace given by path: another container's network", function()
    write_config(function(config) config.process.args = { "sleep", "1000" } end)
    local started = oci_detached("run", "--detach", "--bundle", bundle, "n1")
    assert.are.equal(0, started.code, started.err)
    local pid = math.tointeger(state_of("n1").pid)
    local netns = require("lfs").symlinkattributes("/proc/" .. pid .. "/ns/net", "target")
    write_config(function(config)
      for _, ns in ipairs(config.linux.namespaces) do
        if ns.type == "network" then ns.path = "/proc/" .. pid .. "/ns/net" end
      end
      config.process.args = { "readlink", "/proc/self/ns/net" }
    end)
    local r = oci("run", "--bundle", bundle, "n2")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(netns .. "\n", r.out)
    assert.are.equal(0, oci("delete", "--force", "n1").code)
  end)

  it("update changes the limits of a running container", function()
    write_config(function(config) config.process.args = { "sleep", "1000" } end)
    local started = oci_detached("run", "--detach", "--bundle", bundle, "u1")
    assert.are.equal(0, started.code, started.err)
    local r = oci("update", "--memory", tostring(64 * 1024 * 1024), "--pids-limit", "20", "u1")
    assert.are.equal(0, r.code, r.err)
    -- as the container sees its own cgroups
    local memory = cgroups.unified() and "/sys/fs/cgroup/memory.max" or "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    local pids = cgroups.unified() and "/sys/fs/cgroup/pids.max" or "/sys/fs/cgroup/pids/pids.max"
    r = oci("exec", "u1", "cat", memory, pids)
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(tostring(64 * 1024 * 1024) .. "\n20\n", r.out)
    assert_error(oci("update", "--pids-limit", "many", "u1"), '%-%-pids%-limit "many": a whole number expected')
    assert.are.equal(0, oci("delete", "--force", "u1").code)
  end)

  it("runs the hooks with the state on stdin, and a recipe named by an annotation", function()
    local function hook(name)
      return { path = "/bin/sh", args = { "sh", "-c", "cat > " .. shared .. "/" .. name .. ".json" } }
    end
    helper.write_file(shared .. "/recipe.lua", [[
      return function(box)
        box:before("pivot_root", "motd", function(ctx)
          local f = assert(io.open(ctx.spec.root.path .. "/tmp/motd", "w"))
          f:write("written by a recipe\n")
          f:close()
        end)
      end
    ]])
    write_config(function(config)
      config.process.args = { "sh", "-c", "cat /tmp/motd > /shared/motd; exec sleep 1000" }
      config.hooks = { prestart = { hook("prestart") }, poststart = { hook("poststart") }, poststop = { hook("poststop") } }
      config.annotations = { ["org.lbox.recipe"] = shared .. "/recipe.lua", note = "kept" }
    end)
    local created = oci_detached("create", "--bundle", bundle, "h1")
    assert.are.equal(0, created.code, created.err)
    local prestart = cjson.decode(helper.read_file(shared .. "/prestart.json"))
    assert.are.equal("created", prestart.status)
    assert.are.equal(state_of("h1").pid, prestart.pid)
    assert.are.equal("kept", prestart.annotations.note)
    assert.is_nil(helper.read_file(shared .. "/poststart.json"))
    assert.are.equal(0, oci("start", "h1").code)
    assert.are.equal("h1", cjson.decode(helper.read_file(shared .. "/poststart.json")).id)
    assert.is_true(helper.eventually(function() return helper.read_file(shared .. "/motd") ~= nil end))
    assert.are.equal("written by a recipe\n", helper.read_file(shared .. "/motd"))
    assert.is_nil(helper.read_file(shared .. "/poststop.json"))
    assert.are.equal(0, oci("delete", "--force", "h1").code)
    assert.are.equal("stopped", cjson.decode(helper.read_file(shared .. "/poststop.json")).status)
  end)

  it("sends the terminal's master over --console-socket", function()
    write_config(function(config)
      config.process.terminal = true
      config.process.consoleSize = { height = 33, width = 77 }
      config.process.args = { "sh", "-c", "stty size; tty; echo on-a-terminal" }
    end)
    local socket_path = shared .. "/console.sock"
    local listener = assert(core.unix_listen(socket_path))
    local create = start_oci("create", "--bundle", bundle, "--console-socket", socket_path, "t1")
    local conn = assert(core.accept(listener))
    local master = assert(core.recv_fd(conn))
    core.close(conn)
    core.close(listener)
    local r = helper.finish(create)
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(0, oci("start", "t1").code)
    local output = helper.read_until(master, "on%-a%-terminal")
    core.close(master)
    assert.matches("33 77", output)
    assert.matches("/dev/console", output)
    assert.is_true(helper.eventually(function() return status_of("t1") == "stopped" end))
    assert.are.equal(0, oci("delete", "t1").code)
  end)

  describe("refuses bad input with one line, exit 1, and leaves nothing", function()
    local cases = {
      { "malformed JSON", function() helper.write_file(bundle .. "/config.json", "{ not json") end, "not JSON" },
      { "a missing root", function() write_config(function(c) c.root = nil end) end, "config.json: root: required" },
      { "a root that is not there", function() write_config(function(c) c.root.path = "nowhere" end) end,
        "root.path: .*nowhere is not a directory" },
      { "an unknown namespace", function()
        write_config(function(c) table.insert(c.linux.namespaces, { type = "galaxy" }) end)
      end, 'unknown namespace "galaxy"' },
      { "a user namespace", function()
        write_config(function(c) table.insert(c.linux.namespaces, { type = "user" }) end)
      end, "user namespaces are not supported" },
      { "a relative mount destination", function()
        write_config(function(c) table.insert(c.mounts, { destination = "data", type = "tmpfs", source = "tmpfs" }) end)
      end, 'destination: "data" is not an absolute path' },
      { "a relative cwd", function() write_config(function(c) c.process.cwd = "tmp" end) end,
        'process.cwd: "tmp" is not an absolute path' },
      { "args of the wrong type", function() write_config(function(c) c.process.args = "sh" end) end,
        "process.args: a list expected" },
      { "an unknown capability", function()
        write_config(function(c) c.process.capabilities.bounding = { "CAP_FLY" } end)
      end, 'unknown capability "CAP_FLY"' },
      { "a command that is not there", function()
        write_config(function(c) c.process.args = { "no-such-command" } end)
      end, "no%-such%-command.*not found" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        case[2]()
        assert_error(oci("create", "--bundle", bundle, "bad"), case[3])
        assert_error(oci("state", "bad"), "container bad does not exist")
      end)
    end

    it("an id taken, and ids and commands that do not exist", function()
      write_config(command("exec sleep 1000"))
      assert.are.equal(0, oci_detached("create", "--bundle", bundle, "dup").code)
      assert_error(oci_detached("create", "--bundle", bundle, "dup"), "container with id dup already exists")
      assert.are.equal("created", status_of("dup"))
      assert.are.equal(0, oci("delete", "dup").code) -- a created container needs no --force
      assert_error(oci("start", "dup"), "container dup does not exist")
      assert_error(oci("kill", "dup"), "container dup does not exist")
      assert_error(oci("create", "--bundle", bundle, "../up"), "invalid container id")
      assert_error(oci("frobnicate"), 'unknown command "frobnicate"')
      assert_error(helper.exec { OCI, "--systemd-cgroup", "list" }, "%-%-systemd%-cgroup is not supported")
    end)

    it("writes the error to --log, as JSON with --log-format json", function()
      local log = shared .. "/log.json"
      local r = helper.exec { OCI, "--root", helper.oci_root, "--log", log, "--log-format", "json", "state", "ghost" }
      assert_error(r, "container ghost does not exist")
      local entry = cjson.decode(helper.read_file(log))
      assert.are.equal("error", entry.level)
      assert.are.equal("container ghost does not exist", entry.msg)
      assert.truthy(entry.time)
    end)
  end)
end)

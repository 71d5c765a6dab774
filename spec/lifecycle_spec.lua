-- Detached containers and the management commands, against real
-- containers; each test removes what it kept, then the leak check runs.
local cjson = require "cjson"
local core = require "lbox.core"
local helper = require "helper"
local lfs = require "lfs"

local function lbox(...)
  return helper.lbox_run { ... }
end

local function ok(...)
  local r = lbox(...)
  assert.are.equal(0, r.code, table.concat({ ... }, " ") .. ": " .. r.err)
  return r.out
end

local function detach(...)
  return (ok("run", "-d", ...):match("^(%x+)\n$"))
end

local function inspect(ref)
  return cjson.decode(ok("inspect", ref))[1]
end

-- The lines of `lbox ps` after its header.
local function ps_rows(...)
  local rows = {}
  for line in ok("ps", ...):gmatch("[^\n]+") do rows[#rows + 1] = line end
  table.remove(rows, 1)
  return rows
end

local eventually = helper.eventually

local function refused(args, code, pattern)
  local r = helper.lbox_run(args)
  assert.are.equal(code, r.code, table.concat(args, " ") .. ": " .. r.err)
  assert.matches("^lbox: error: [^\n]+\n$", r.err)
  assert.matches(pattern, r.err)
end

describe("lbox run -d and the management commands", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("runs detached, logs its output, and records how it ended", function()
    local t0 = os.time()
    local id = detach("--name", "lbox-spec-web", "sh", "-c", "echo out; echo err >&2; sleep 4; exit 3")
    assert.are.equal(64, #id)
    local rows = ps_rows()
    assert.are.equal(1, #rows)
    assert.matches("^" .. id:sub(1, 12) .. ' +busybox +"sh %-c echo out;[^"]*" .* Up %d+ seconds +lbox%-spec%-web$', rows[1])
    assert.is_true(eventually(function() return inspect("lbox-spec-web").status == "exited" end))
    local state = inspect(id:sub(1, 6))
    assert.are.same({ 3, "lbox-spec-web", id }, { state.exit_code, state.name, state.id })
    assert.is_true(state.finished >= t0)
    assert.are.same({}, ps_rows())
    assert.matches("Exited %(3%) %d+ seconds ago +lbox%-spec%-web$", ps_rows("-a")[1])
    assert.are.same({ id:sub(1, 12) }, ps_rows("-a", "-q") and { ok("ps", "-a", "-q"):match("^(%x+)\n$") })
    assert.are.equal(id, cjson.decode(ok("ps", "-a", "--format", "json"))[1].id)
    assert.are.equal("out\nerr\n", ok("logs", "lbox-spec-web"))
    assert.are.equal("err\n", ok("logs", "--tail", "1", id))
    ok("rm", "lbox-spec-web")
    assert.are.same({}, ps_rows("-a"))
  end)

  it("leaves none of the caller's descriptors, nor its directory, busy in the monitor", function()
    -- a pipe the monitor held would keep its reader waiting for the container
    local r = helper.sh("timeout 10 sh -c '( " .. helper.lbox .. " run -d sleep 30 3>&1 >&4 ) 4>&1 | cat'")
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    local monitor = math.tointeger(inspect(id).monitor)
    local open = {}
    for fd in lfs.dir("/proc/" .. monitor .. "/fd") do
      local target = fd:match("^%d+$") and lfs.symlinkattributes("/proc/" .. monitor .. "/fd/" .. fd, "target")
      if target and not target:find("^/dev/null$") and not target:find(id, 1, true)
        and not target:find("signalfd") then open[#open + 1] = fd .. " -> " .. target end
    end
    assert.are.same({}, open)
    assert.are.equal("/", lfs.symlinkattributes("/proc/" .. monitor .. "/cwd", "target"))
    ok("rm", "-f", id)
  end)

  it("follows the log until the container ends", function()
    local id = detach("sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done")
    local r = lbox("logs", "-f", id)
    assert.are.same({ 0, "line 1\nline 2\nline 3\n" }, { r.code, r.out })
    ok("rm", id)
  end)

  it("removes a detached --rm container when it ends", function()
    local id = detach("--rm", "sh", "-c", "sleep 0.5")
    assert.is_true(eventually(function() return lbox("inspect", id).code ~= 0 end))
    refused({ "inspect", id }, 1, "no such container")
  end)

  it("execs into every namespace and the cgroup of a running container", function()
    local id = detach("--name", "lbox-spec-exec", "-e", "FROM=run", "sh", "-c", "echo ready > /tmp/mark; sleep 30")
    assert.is_true(eventually(function() return lbox("exec", id, "cat", "/tmp/mark").out == "ready\n" end))
    local r = lbox("exec", "-e", "EXTRA=1", "-w", "/tmp", "lbox-spec-exec", "sh", "-c",
      "echo $FROM $EXTRA $(pwd) $(hostname) $$; "
      -- the container's own cgroup, as it sees it: v2 at /sys/fs/cgroup, v1 per controller
      .. "cat /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null | grep -c \"^$$\\$\"; exit 4")
    assert.are.equal(4, r.code, r.err)
    local pid = tonumber(r.out:match("^run 1 /tmp %x+ (%d+)\n"))
    assert.is_true(pid and pid < 10, r.out) -- numbered in the container's pid namespace
    assert.matches("\n1\n$", r.out) -- and in the container's cgroup
    -- the descriptors lbox exec had open stay out
    local fds = helper.sh(helper.lbox .. " exec " .. id .. " sh -c 'ls /proc/$$/fd; true' 3</etc/hostname")
    assert.are.same({ 0, "0\n1\n2\n" }, { fds.code, fds.out })
    local stdin = helper.lbox_run({ "exec", "-i", id, "cat" }, { stdin = "fed\n" })
    assert.are.equal("fed\n", stdin.out)
    local stats = ok("stats", "--no-stream", "lbox-spec-exec")
    assert.matches(id:sub(1, 12) .. " +lbox%-spec%-exec +[%d.]+MiB +[%d.]+s +%d+\n$", stats)
    ok("rm", "-f", id)
  end)

  it("execs as the container's user, or the one -u names", function()
    local id = detach("-u", "nobody", "sleep", "30")
    local probe = { "sh", "-c", "id -u; id -g; echo $HOME" }
    assert.are.equal("65534\n65534\n/\n", ok("exec", id, table.unpack(probe)))
    assert.are.equal("0\n0\n/root\n", ok("exec", "-u", "root", id, table.unpack(probe)))
    assert.are.equal("4242\n65534\n/\n", ok("exec", "-u", "4242:nogroup", id, table.unpack(probe)))
    refused({ "exec", "-u", "ghost", id, "true" }, 125, "unable to find user ghost")
    ok("rm", "-f", id)
  end)

  it("execs with a terminal of its own under -it", function()
    local id = detach("sleep", "30")
    local term = helper.start_pty({ helper.lbox, "exec", "-it", id, "sh" }, 33, 91)
    assert.is_true(helper.expect(term, "# "), term.output)
    core.write(term.master, "stty size; sleep 0.1 & jobs; echo $((6*7))\n")
    assert.is_true(helper.expect(term, "42"), term.output)
    assert.matches("33 91", term.output)
    assert.matches("%[1%]", term.output)
    -- the window size follows lbox's terminal
    core.set_winsize(term.master, 50, 120)
    core.kill(term.pid, core.SIGWINCH)
    assert.is_true(helper.eventually(function()
      core.write(term.master, "stty size\n")
      return helper.expect(term, "50 120", 0.3)
    end, 5), term.output)
    core.write(term.master, "exit 5\n")
    assert.are.equal(5, helper.finish_pty(term))
    ok("rm", "-f", id)
  end)

  it("gives the user -u names under -t a terminal it owns, as docker: user:tty, 0620", function()
    local id = detach("sleep", "30")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local term = helper.start_pty({ helper.lbox, "exec", "-t", "-u", "nobody", id, "sh", "-c",
      "stat -L -c 'owner=%u:%g mode=%a' /proc/self/fd/0; echo reopened > /proc/self/fd/1 && echo done" }, 24, 80)
    assert.are.equal(0, helper.finish_pty(term), term.output)
    assert.matches("owner=65534:5 mode=620", term.output)
    assert.matches("reopened%s+done", term.output)
    ok("rm", "-f", id)
  end)

  it("passes the signals lbox exec gets on to its command", function()
    local id = detach("sleep", "30")
    local proc = helper.start { helper.lbox, "exec", id, "sh", "-c",
      "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.05; done" }
    helper.read_until(proc.out_fd, "ready")
    core.kill(proc.pid, core.SIGTERM)
    local r = helper.finish(proc, 10)
    assert.are.same({ 9, "got-term\n" }, { r.code, r.out })
    ok("rm", "-f", id)
  end)

  it("stops with SIGTERM, then SIGKILL after the grace period; kills with any signal", function()
    local polite = detach("sh", "-c", "trap 'exit 7' TERM; echo ready; sleep 30 & wait")
    local stubborn = detach("sleep", "30")
    local trapped = detach("sh", "-c", "trap 'exit 9' USR1; echo ready; sleep 30 & wait")
    for _, id in ipairs { polite, trapped } do
      assert.is_true(eventually(function() return ok("logs", id) == "ready\n" end))
    end
    local started = os.time()
    ok("stop", "-t", "1", polite, stubborn)
    -- the default grace period is 10 s: a stop well under it used -t 1
    assert.is_true(os.time() - started < 9)
    assert.are.same({ 7, 137 }, { inspect(polite).exit_code, inspect(stubborn).exit_code })
    assert.matches("^" .. trapped .. "\n$", ok("kill", "-s", "USR1", trapped))
    assert.is_true(eventually(function() return inspect(trapped).status == "exited" end))
    assert.are.equal(9, inspect(trapped).exit_code)
    ok("stop", polite) -- as docker: stopping a stopped container is no error
    ok("rm", polite, stubborn, trapped)
  end)

  it("waits for containers to end and prints their exit codes", function()
    local slow = detach("sh", "-c", "sleep 0.5; exit 4")
    local quick = detach("sh", "-c", "exit 9")
    assert.are.equal("4\n9\n", ok("wait", slow, quick))
    assert.are.equal("exited", inspect(slow).status)
    ok("rm", slow, quick)
    refused({ "wait", "lbox-spec-none" }, 1, "no such container: lbox%-spec%-none")
  end)

  it("refuses to remove a running container without -f; -f removes everything", function()
    local id = detach("--name", "lbox-spec-rm", "-m", "32m", "sleep", "30")
    refused({ "rm", id }, 1, "is running: stop it first, or use rm %-f") -- wrong state: 1, as kill and exec
    assert.are.equal(1, #ps_rows())
    ok("rm", "-f", "lbox-spec-rm")
    -- the leak check: no process, cgroup, directory or state left
  end)

  it("gives the container exactly the environment given, plus the defaults", function()
    local env_file = os.tmpname()
    local f = assert(io.open(env_file, "w"))
    f:write("# comment\n\nFROM_FILE=1\nBOTH=file\nHOSTVAR\n")
    f:close()
    local r = helper.lbox_run({ "run", "--env-file", env_file, "-e", "BOTH=flag", "-u", "65534:65534", "sh", "-c",
      "env | sort; id -u; id -g" }, { env = helper.env("PATH=/bin", "HOSTVAR=from-host", "SECRET=host") })
    os.remove(env_file)
    assert.are.equal(0, r.code, r.err)
    local names = {}
    for name in r.out:gmatch("([%w_]+)=") do names[#names + 1] = name end
    table.sort(names)
    assert.are.same({ "BOTH", "FROM_FILE", "HOME", "HOSTNAME", "HOSTVAR", "PATH", "PWD", "SHLVL" }, names)
    assert.matches("\nBOTH=flag\n", "\n" .. r.out)
    assert.matches("HOSTVAR=from%-host\n", r.out)
    assert.matches("\n65534\n65534\n$", r.out)
  end)

  it("tells the truth when a monitor is killed, and rm -f cleans up", function()
    local id = detach("-m", "32m", "sleep", "30")
    local monitor = inspect(id).monitor
    core.kill(monitor, core.SIGKILL)
    -- the container dies with its monitor; its cgroup and directory stay
    assert.is_true(eventually(function() return inspect(id).status == "exited" end))
    assert.matches("Exited %(%?%)", ps_rows("-a")[1])
    assert.is_true(#helper.container_cgroups() > 0)
    ok("rm", "-f", id)
  end)

  it("keeps twenty containers in parallel apart: start, exec, stop, rm", function()
    local function all(make_args)
      local procs = {}
      for i = 1, 20 do procs[i] = helper.start { helper.lbox, table.unpack(make_args(i)) } end
      local results = {}
      for i = 1, 20 do results[i] = helper.finish(procs[i], 60) end
      return results
    end
    local name = function(i) return "lbox-spec-par-" .. i end
    for i, r in ipairs(all(function(i) return { "run", "-d", "--name", name(i), "sh", "-c", "sleep 600" } end)) do
      assert.are.equal(0, r.code, name(i) .. ": " .. r.err)
    end
    assert.are.equal(20, #ps_rows())
    for i, r in ipairs(all(function(i) return { "exec", name(i), "hostname" } end)) do
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(inspect(name(i)).hostname .. "\n", r.out)
    end
    for _, r in ipairs(all(function(i) return { "stop", "-t", "1", name(i) } end)) do assert.are.equal(0, r.code, r.err) end
    assert.are.equal(20, #cjson.decode(ok("ps", "-a", "--format", "json")))
    for _, r in ipairs(all(function(i) return { "rm", name(i) } end)) do assert.are.equal(0, r.code, r.err) end
    assert.are.same({}, ps_rows("-a"))
  end)

  it("never signals or enters a process that took a container's recorded pid after it ended", function()
    local id = detach("sleep", "60")
    -- as if PID 1 had ended and its number gone to another process (here a
    -- sleep of the test's own) before the monitor let go of the container
    local bystander = assert(core.clone(0))
    if bystander == 0 then core.execve("/bin/sleep", { "sleep", "60" }, {}) core._exit(127) end
    local path = helper.store .. "/containers/" .. id .. "/state.json"
    local recorded = helper.read_file(path)
    local pid = cjson.decode(recorded).pid
    finally(function()
      core.kill(bystander, core.SIGKILL)
      core.waitpid(bystander)
    end)
    helper.write_file(path, (recorded:gsub('"pid":%d+', '"pid":' .. bystander)))
    refused({ "kill", id }, 1, "is not running")
    refused({ "exec", id, "true" }, 1, "is not running")
    ok("stop", "-t", "1", id)
    assert.are.equal(0, core.waitpid(bystander, "nohang"), "the bystander was signalled")
    assert.is_true(core.kill(pid, 0), "the container was signalled through another process's number")
    helper.write_file(path, recorded)
    ok("rm", "-f", id)
  end)

  describe("bad input", function()
    it("names unknown, ambiguous and taken containers", function()
      refused({ "logs", "ffffffffffff" }, 1, "no such container: ffffffffffff")
      refused({ "stop", "no-such-name" }, 1, "no such container")
      local started = {}
      finally(function() if #started > 0 then helper.lbox_run({ "rm", "-f", table.unpack(started) }) end end)
      local a = detach("--name", "lbox-spec-taken", "sleep", "30")
      started[1] = a
      refused({ "run", "-d", "--name", "lbox-spec-taken", "true" }, 125, 'the name "lbox%-spec%-taken" is taken')
      refused({ "run", "--name", "bad name", "true" }, 125, "%-%-name: ")
      -- Ids are random: among seventeen, two share a first hex digit for sure.
      local seen, shared = { [a:sub(1, 1)] = true }, nil
      while not shared do
        assert.is_true(#started < 17, "seventeen hex ids and no shared first digit")
        local id = detach("sleep", "30")
        started[#started + 1] = id
        shared = seen[id:sub(1, 1)] and id:sub(1, 1)
        seen[id:sub(1, 1)] = true
      end
      refused({ "inspect", shared }, 1, "ambiguous")
      ok("rm", "-f", table.unpack(started))
      started = {}
    end)

    it("refuses exec and kill on a stopped container, and malformed env files", function()
      local id = detach("true")
      assert.is_true(eventually(function() return inspect(id).status == "exited" end))
      refused({ "exec", id, "true" }, 1, "is not running")
      refused({ "kill", id }, 1, "is not running")
      ok("rm", id)
      local env_file = os.tmpname()
      local f = assert(io.open(env_file, "w"))
      f:write("GOOD=1\n=value\n")
      f:close()
      refused({ "run", "--env-file", env_file, "true" }, 125, "%-%-env%-file .*:2: \"=value\" is not NAME=VALUE")
      refused({ "run", "--env-file", "/nonexistent", "true" }, 125, "cannot read it")
      os.remove(env_file)
      refused({ "run", "-d", "-t", "true" }, 125, "neither %-t nor %-i")
    end)
  end)
end)

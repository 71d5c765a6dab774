-- Confinement: seccomp (docker's default profile, unconfined, profile
-- files), capabilities (--cap-add, --cap-drop, --privileged) in all five
-- sets, no_new_privs, for programs and Lua payloads alike.
local capabilities = require "lbox.capabilities"
local core = require "lbox.core"
local helper = require "helper"
local lbox = require "lbox"

local function fs_exists(path) return require("lfs").attributes(path) ~= nil end

local function mask(names)
  local m = 0
  for _, name in ipairs(names) do m = m | (1 << capabilities.NUMBERS[name]) end
  return m
end
local DEFAULT_MASK = mask(capabilities.DEFAULT)

-- The capability sets and seccomp fields of /proc/self/status text.
local function status_of(text)
  local t = {}
  for key, value in text:gmatch("(%w+):%s*(%x+)\n") do t[key] = value end
  local sets = {}
  for _, set in ipairs { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" } do sets[set] = tonumber(t[set], 16) end
  return sets, tonumber(t.Seccomp), tonumber(t.NoNewPrivs)
end

local STATUS = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status"

-- Run a Lua payload, return what it printed and its exit code.
local function payload(fn, spec)
  local r, w = assert(core.pipe())
  spec = spec or {}
  spec.command, spec.stdio = fn, { stdout = w }
  local box = lbox.container(spec)
  box:start()
  core.close(w)
  local status = box:wait()
  local out = {}
  repeat
    local chunk = core.read(r, 65536)
    out[#out + 1] = chunk
  until not chunk or chunk == ""
  core.close(r)
  return table.concat(out), status.exit_code
end

describe("confinement", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  describe("seccomp", function()
    it("refuses a user namespace by default, and allows it unconfined", function()
      local r = helper.lbox_run { "run", "sh", "-c", "unshare -U true; echo $?; " .. STATUS }
      assert.are.equal(0, r.code, r.err)
      assert.matches("^1\n", r.out)
      assert.matches("unshare%(0x10000000%): Operation not permitted", r.err)
      local _, mode = status_of(r.out)
      assert.are.equal(2, mode, "no seccomp filter")
      local free = helper.lbox_run { "run", "--security-opt", "seccomp=unconfined", "sh", "-c",
        "unshare -U true; echo $?; " .. STATUS }
      assert.are.equal(0, free.code, free.err)
      assert.matches("^0\n", free.out)
      assert.are.equal(0, select(2, status_of(free.out)))
    end)

    it("refuses keyctl on the host's keyrings, in a program's place as in a Lua payload", function()
      -- KEYCTL_GET_KEYRING_ID of KEY_SPEC_USER_KEYRING: root's user keyring, on the host
      local out, code = payload(function()
        local ok, msg = core.new_session_keyring()
        print(ok, msg)
        return 0
      end)
      assert.are.equal(0, code)
      assert.matches("^nil\tkeyctl 'KEYCTL_JOIN_SESSION_KEYRING': Operation not permitted\n$", out)
    end)

    it("lets ordinary programs work", function()
      local r = helper.lbox_run { "run", "sh", "-c",
        "echo hi | sed s/hi/ho/; ls / >/dev/null && ps >/dev/null && date >/dev/null && "
        .. "ping -c1 -W2 127.0.0.1 >/dev/null && (sleep 0.1 &) && wait && echo done" }
      assert.are.same({ 0, "ho\ndone\n" }, { r.code, r.out }, r.err)
    end)

    it("keeps docker's profile compiled in the store, whatever directory lbox runs from", function()
      -- compiling it takes milliseconds: every start would pay them
      local cache = helper.store .. "/cache/seccomp"
      helper.sh("rm -rf " .. cache)
      local r = helper.sh("cd / && exec " .. helper.lbox .. " run true")
      assert.are.equal(0, r.code, r.err)
      local programs = {}
      if fs_exists(cache) then
        for name in require("lfs").dir(cache) do
          if name:match("^default%.") then programs[#programs + 1] = name end
        end
      end
      assert.are.equal(1, #programs, "compiled programs: " .. table.concat(programs, " "))
    end)

    it("takes a profile in docker's format, and applies it to exec too", function()
      local profile = os.tmpname()
      helper.write_file(profile, [[{"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}]])
      local r = helper.lbox_run { "run", "--security-opt", "seccomp=" .. profile, "sh", "-c",
        "mkdir /x; unshare -U true && echo userns" }
      local id = helper.lbox_run({ "run", "-d", "--security-opt", "seccomp=" .. profile, "sleep", "30" }).out:match("%x+")
      local e = helper.lbox_run { "exec", id, "sh", "-c", "mkdir /y; " .. STATUS }
      helper.lbox_run { "rm", "-f", id }
      os.remove(profile)
      assert.are.equal(0, r.code, r.err)
      assert.matches("mkdir: can't create directory '/x': Permission denied", r.err)
      assert.matches("userns", r.out)
      assert.matches("mkdir: can't create directory '/y': Permission denied", e.err)
      assert.are.equal(2, select(2, status_of(e.out)))
    end)

    it("refuses a bad profile in one line, with nothing left behind", function()
      local bad = os.tmpname()
      for text, message in pairs {
        ["{nope"] = "is not JSON",
        ['{"defaultAction": "SCMP_ACT_MAYBE"}'] = 'unknown action "SCMP_ACT_MAYBE"',
        ['{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", '
          .. '"args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}'] = "index must be 0 to 5",
      } do
        helper.write_file(bad, text)
        local r = helper.lbox_run { "run", "--security-opt", "seccomp=" .. bad, "true" }
        assert.are.equal(125, r.code)
        assert.matches("^lbox: error: %-%-security%-opt seccomp: [^\n]*" .. message:gsub("%p", "%%%0") .. "[^\n]*\n$", r.err)
      end
      os.remove(bad)
      local r = helper.lbox_run { "run", "--security-opt", "seccomp=/nonexistent.json", "true" }
      assert.are.same({ 125, "lbox: error: --security-opt seccomp: cannot read /nonexistent.json\n" }, { r.code, r.err })
      r = helper.lbox_run { "run", "--security-opt", "apparmor=x", "true" }
      assert.are.equal(125, r.code)
      assert.matches("^lbox: error: %-%-security%-opt \"apparmor=x\"", r.err)
    end)
  end)

  describe("capabilities", function()
    it("gives root docker's set in the effective, permitted and bounding sets, none inheritable or ambient", function()
      local r = helper.lbox_run { "run", "sh", "-c", STATUS }
      assert.are.equal(0, r.code, r.err)
      local sets = status_of(r.out)
      assert.are.same({ CapInh = 0, CapPrm = DEFAULT_MASK, CapEff = DEFAULT_MASK, CapBnd = DEFAULT_MASK, CapAmb = 0 },
        sets)
    end)

    it("confines a Lua payload as it does a program: capabilities, descriptors, seccomp", function()
      local leaked = assert(core.open("/dev/null", "r")) -- lbox's own descriptor
      local out, code = payload(function()
        local fds = {}
        for name in require("lfs").dir("/proc/self/fd") do
          if name:match("^%d+$") then fds[#fds + 1] = tonumber(name) end
        end
        table.sort(fds)
        local f = io.open("/proc/self/status")
        io.write(f:read("a"), "fds: ", table.concat(fds, " "), "\n")
        f:close()
        return 0
      end)
      core.close(leaked)
      assert.are.equal(0, code)
      local sets, mode = status_of(out)
      assert.are.same({ CapInh = 0, CapPrm = DEFAULT_MASK, CapEff = DEFAULT_MASK, CapBnd = DEFAULT_MASK, CapAmb = 0 },
        sets)
      assert.are.equal(2, mode)
      -- stdin, stdout, stderr, and the directory being listed
      assert.matches("\nfds: 0 1 2 3\n", out)
    end)

    it("leaves a payload run as another user no capabilities, as execve would", function()
      local out = payload(function()
        local f = io.open("/proc/self/status")
        io.write(f:read("a"))
        f:close()
        return 0
      end, { user = "1000" })
      local sets = status_of(out)
      assert.are.same({ CapInh = 0, CapPrm = 0, CapEff = 0, CapBnd = DEFAULT_MASK, CapAmb = 0 }, sets)
    end)

    it("adds and drops capabilities by docker's names", function()
      local function caps_of(...)
        local r = helper.lbox_run { "run", ... }
        assert.are.equal(0, r.code, r.err)
        local sets = status_of(r.out)
        assert.are.equal(sets.CapEff, sets.CapBnd)
        return sets.CapEff
      end
      assert.are.equal(mask { "CAP_NET_RAW" }, caps_of("--cap-drop", "ALL", "--cap-add", "net_raw", "sh", "-c", STATUS))
      local all = mask(capabilities.all()) & status_of(helper.sh(STATUS).out).CapBnd
      assert.are.equal(all & ~mask { "CAP_SYS_ADMIN" },
        caps_of("--cap-add", "ALL", "--cap-drop", "SYS_ADMIN", "sh", "-c", STATUS))
      assert.are.equal((DEFAULT_MASK | mask { "CAP_NET_ADMIN" }) & ~mask { "CAP_CHOWN" },
        caps_of("--cap-add", "CAP_NET_ADMIN", "--cap-drop", "chown", "sh", "-c", STATUS))
      -- without CAP_SETUID the user step still works: it runs before the capabilities are set
      local r = helper.lbox_run { "run", "--cap-drop", "SETUID", "-u", "1000", "id", "-u" }
      assert.are.same({ 0, "1000\n" }, { r.code, r.out }, r.err)
      -- and a dropped capability is gone: chown needs CAP_CHOWN
      r = helper.lbox_run { "run", "--cap-drop", "CHOWN", "sh", "-c", "touch /f && chown 1000 /f" }
      assert.are.equal(1, r.code)
      assert.matches("Operation not permitted", r.err)
      r = helper.lbox_run { "run", "--cap-add", "CAP_BOGUS", "true" }
      assert.are.same({ 125, 'lbox: error: --cap-add: unknown capability "CAP_BOGUS"\n' }, { r.code, r.err })
    end)

    it("--privileged: every capability, no seccomp", function()
      local r = helper.lbox_run { "run", "--privileged", "sh", "-c", STATUS .. "; unshare -U true && echo userns" }
      assert.are.equal(0, r.code, r.err)
      local sets, mode = status_of(r.out)
      assert.are.equal(status_of(helper.sh(STATUS).out).CapBnd, sets.CapEff)
      assert.are.equal(0, mode)
      assert.matches("userns", r.out)
    end)

    it("--security-opt no-new-privileges: setuid programs gain nothing", function()
      local r = helper.lbox_run { "run", "--security-opt", "no-new-privileges", "sh", "-c", STATUS }
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(1, select(3, status_of(r.out)))
      assert.are.equal(2, select(2, status_of(r.out)))
      -- without it, the container has the flag only if lbox had it (under
      -- bubblewrap, say, which sets it for good)
      local plain = helper.lbox_run { "run", "sh", "-c", STATUS }
      assert.are.equal(select(3, status_of(helper.read_file("/proc/self/status"))), select(3, status_of(plain.out)))
    end)

    it("confines a command exec'd through the API as the container's PID 1 (lbox.inside.exec_steps)", function()
      local box <close> = lbox.container { command = { "sleep", "30" }, cap_drop = { "CHOWN" }, no_new_privileges = true }
      box:start()
      local kept = DEFAULT_MASK & ~mask { "CAP_CHOWN" }
      local want = string.format("CapInh:%016xCapPrm:%016xCapEff:%016xCapBnd:%016xCapAmb:%016xNoNewPrivs:1Seccomp:2",
        0, kept, kept, kept, 0)
      local status = assert(box:exec { "sh", "-c",
        "[ \"$(grep -E '^(Cap...|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \\t\\n')\" = " .. want .. " ]" })
      assert.are.equal(0, status.exit_code)
      -- and as another user: nothing effective or permitted, the same bounding set and filter
      want = string.format("CapInh:%016xCapPrm:%016xCapEff:%016xCapBnd:%016xCapAmb:%016xNoNewPrivs:1Seccomp:2",
        0, 0, 0, kept, 0)
      status = assert(box:exec({ "sh", "-c",
        "[ \"$(grep -E '^(Cap...|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \\t\\n')\" = " .. want .. " ]" },
        { user = "1000" }))
      assert.are.equal(0, status.exit_code)
    end)
  end)

  describe("devices", function()
    it("gives a host device with --device, with the access asked for only", function()
      -- opened, never read or written: the kernel log is the host's
      local r = helper.lbox_run { "run", "--device", "/dev/kmsg:/dev/log-wo:w", "sh", "-c",
        "ls -l /dev/log-wo; true > /dev/log-wo; echo write=$?; true < /dev/log-wo; echo read=$?" }
      assert.are.equal(0, r.code, r.err)
      assert.matches("^c[rw-]+%s+1 root%s+root%s+1,%s+11 [^\n]* /dev/log%-wo\n", r.out)
      assert.matches("write=0\nread=1\n$", r.out)
      assert.matches("can't open /dev/log%-wo: Operation not permitted", r.err)
      for arg, message in pairs {
        ["/dev/nonexistent"] = "no such device: /dev/nonexistent",
        ["/etc/passwd"] = "/etc/passwd is not a device node",
        ["/dev/null:/x:rwx"] = '"/dev/null:/x:rwx": use HOST[:CONTAINER][:rwm] with absolute paths',
      } do
        local bad = helper.lbox_run { "run", "--device", arg, "true" }
        assert.are.same({ 125, "lbox: error: --device: " .. message .. "\n" }, { bad.code, bad.err })
      end
    end)

    it("makes device nodes with the modes asked for, whatever lbox's umask", function()
      local r = helper.sh("umask 022 && " .. helper.lbox .. " run -u 1000 --device /dev/kmsg:/dev/k sh -c "
        .. "'echo x > /dev/null && ls -l /dev/null /dev/zero /dev/k'", { env = helper.ENV })
      assert.are.equal(0, r.code, r.err)
      assert.matches("crw%-rw%-rw%-[^\n]*/dev/null\n", r.out)
      assert.matches("crw%-rw%-rw%-[^\n]*/dev/zero\n", r.out)
      local host_mode = helper.sh("ls -l /dev/kmsg").out:match("^(%S+)")
      assert.matches("^" .. host_mode:gsub("%-", "%%-") .. "[^\n]*/dev/k\n", r.out:match("[^\n]*/dev/k\n"))
    end)

    it("--privileged: the host's devices, nothing masked", function()
      local r = helper.lbox_run { "run", "--privileged", "sh", "-c", "ls /dev/kmsg && true < /dev/kmsg && "
        .. "grep -c /proc/keys /proc/mounts" }
      assert.are.equal(1, r.code, r.err) -- grep found no mask
      assert.matches("^/dev/kmsg\n0\n$", r.out)
    end)

    -- the program of the v2 path, on whichever cgroup v2 hierarchy this host has
    it("as an eBPF program on a cgroup v2 group, denies what the rules do not allow", function()
      local devices = require "lbox.devices"
      local cgroups = require "lbox.cgroups"
      local base = cgroups.unified() and "/sys/fs/cgroup" or "/sys/fs/cgroup/unified"
      assert.truthy(fs_exists(base .. "/cgroup.procs"), "no cgroup v2 hierarchy on this host")
      local dir = base .. "/" .. cgroups.parent .. "-device-spec"
      assert(require("lfs").mkdir(dir))
      finally(function() require("lfs").rmdir(dir) end)
      local program = assert(core.bpf_device_program(devices.bpf_program(devices.rules {
        { type = "c", major = 1, minor = 11, access = "r" } })))
      local dir_fd = assert(core.open(dir, "directory"))
      local attached, msg = core.bpf_attach_device(program, dir_fd)
      core.close(program)
      core.close(dir_fd)
      local r, w = assert(core.pipe())
      local pid = assert(core.clone(0))
      if pid == 0 then
        local f = io.open(dir .. "/cgroup.procs", "w")
        f:write(tostring(core.getpid()))
        f:close()
        local results = {}
        for _, try in ipairs { { "/dev/null", "rw" }, { "/dev/kmsg", "r" }, { "/dev/kmsg", "w" }, { "/dev/full", "w" } } do
          local fd, _, errno = core.open(try[1], try[2])
          results[#results + 1] = fd and "ok" or tostring(errno)
          if fd then core.close(fd) end
        end
        core.write(w, table.concat(results, " "))
        core._exit(0)
      end
      core.close(w)
      local seen = core.read(r, 100)
      core.close(r)
      core.waitpid(pid)
      assert.is_true(attached, msg)
      -- null and full by the default rules, kmsg for reading only
      assert.are.equal(string.format("ok ok %d ok", core.EPERM), seen)
      local malformed, why = core.bpf_device_program(string.rep("\0", 8))
      assert.is_nil(malformed)
      assert.matches("BPF_PROG_LOAD", why)
      assert.has_error(function() core.bpf_device_program("short") end)
    end)
  end)
end)

-- The escape battery: as root in a default container, each way out is
-- tried and refused. Each test shows the attempt (a shell line) and what
-- refused it (the message), then checks the host was not touched.
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"
local lfs = require "lfs"

-- Run `script` in a default container (with extra lbox run `args` first).
local function attempt(script, args)
  local argv = { "run" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  table.move({ "sh", "-c", script }, 1, 3, #argv + 1, argv)
  return helper.lbox_run(argv)
end

-- Each line "name=status" the script printed.
local function statuses(out)
  local t = {}
  for name, code in out:gmatch("(%w+)=(%d+)\n") do t[name] = tonumber(code) end
  return t
end

describe("escapes from a default container", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("cannot mount, nor unmount a masked path", function()
    local r = attempt("mount -t tmpfs none /mnt; echo mount=$?; mount -t proc proc /mnt; echo proc=$?; "
      .. "umount /proc/keys; echo umount=$?; umount -l /proc/timer_list; echo lazy=$?; cat /proc/keys | wc -c")
    assert.are.same({ mount = 1, proc = 1, umount = 1, lazy = 1 }, statuses(r.out), r.err)
    assert.matches("mount: permission denied", r.err)
    assert.matches("umount: can't unmount /proc/keys: Operation not permitted", r.err)
    assert.matches("\n0\n$", r.out) -- /proc/keys still masked
  end)

  it("cannot write /proc/sysrq-trigger or /proc/sys", function()
    local r = attempt("echo h > /proc/sysrq-trigger; echo sysrq=$?; echo 3 > /proc/sys/vm/drop_caches; echo sys=$?; "
      .. "echo 1 > /proc/sys/kernel/sysrq; echo sysrq2=$?")
    assert.are.same({ sysrq = 1, sys = 1, sysrq2 = 1 }, statuses(r.out), r.err)
    if fs.exists("/proc/sysrq-trigger") then
      assert.matches("can't create /proc/sysrq%-trigger: Read%-only file system", r.err)
    else -- this kernel has none: the attempt still fails, and makes nothing
      assert.matches("can't create /proc/sysrq%-trigger", r.err)
    end
    assert.matches("can't create /proc/sys/vm/drop_caches: Read%-only file system", r.err)
  end)

  it("cannot load a kernel module", function()
    local r = attempt("insmod /bin/busybox; echo insmod=$?")
    assert.are.same({ insmod = 1 }, statuses(r.out))
    assert.matches("insmod: can't insert '/bin/busybox': Operation not permitted", r.err)
  end)

  it("cannot see, signal or trace a host process", function()
    local host = helper.start { "/bin/sleep", "30" }
    local r = attempt(string.format("kill -9 %d; echo kill=$?; cat /proc/%d/cmdline; sleep 5 & kill -9 -1; "
      .. "echo all=$?", host.pid, host.pid))
    local alive = core.waitpid(host.pid, "nohang") == 0
    core.kill(host.pid, core.SIGKILL)
    helper.finish(host)
    assert.are.equal(0, r.code, r.err)
    -- the pid is the container's own or none; kill -1 reached only the container's sleep
    assert.matches("kill=1\n", r.out)
    assert.matches("can't kill pid " .. host.pid .. ": No such process", r.err)
    assert.is_nil(r.out:find("sleep30", 1, true))
    assert.matches("all=0\n$", r.out)
    assert.is_true(alive, "a host process was killed from the container")
  end)

  it("cannot make a disk's node or /dev/mem, nor open one when it may make nodes", function()
    local r = attempt("mknod /tmp/sda b 8 0; echo disk=$?; mknod /tmp/mem c 1 1; echo mem=$?; "
      .. "ls /dev/mem /dev/kmem; echo ls=$?")
    assert.are.same({ disk = 1, mem = 1, ls = 1 }, statuses(r.out))
    assert.matches("mknod: /tmp/sda: Operation not permitted", r.err)
    assert.matches("mknod: /tmp/mem: Operation not permitted", r.err)
    -- with CAP_MKNOD, as docker gives it: the device rules refuse the open
    r = attempt("mknod /tmp/sda b 8 0; echo disk=$?; head -c1 /tmp/sda; echo open=$?; mknod /tmp/mem c 1 1; "
      .. "head -c1 /tmp/mem; echo mem=$?; mknod /tmp/kmem c 1 2; head -c1 /tmp/kmem; echo kmem=$?; "
      .. "mknod /tmp/null c 1 3 && echo x > /tmp/null; echo null=$?", { "--cap-add", "MKNOD" })
    assert.are.same({ disk = 0, open = 1, mem = 1, kmem = 1, null = 0 }, statuses(r.out), r.err)
    assert.matches("head: /tmp/sda: Operation not permitted", r.err)
    assert.matches("head: /tmp/mem: Operation not permitted", r.err)
  end)

  it("cannot reach the host's cgroup files", function()
    local r = attempt("echo $$ > /sys/fs/cgroup/cgroup.procs; echo procs=$?; mount -t cgroup2 none /mnt; echo v2=$?; "
      .. "mount -t cgroup -o memory none /mnt; echo v1=$?; ls /sys/fs/cgroup | grep -c " .. "lbox; echo")
    assert.are.same({ procs = 1, v2 = 1, v1 = 1 }, statuses(r.out), r.err)
    assert.matches("Read%-only file system", r.err)
  end)

  it("cannot reboot", function()
    local r = attempt("reboot -f; echo reboot=$?; echo alive")
    assert.are.same({ reboot = 1 }, statuses(r.out))
    assert.matches("alive", r.out)
    assert.matches("Operation not permitted", r.err)
  end)

  it("cannot regain capabilities in a user namespace", function()
    local r = attempt("unshare -U -r sh -c 'mount -t tmpfs none /mnt && echo mounted'; echo userns=$?; "
      .. "unshare -m true; echo mountns=$?")
    assert.are.same({ userns = 1, mountns = 1 }, statuses(r.out), r.err)
    assert.is_nil(r.out:find("mounted"))
    assert.matches("unshare%(0x10000000%): Operation not permitted", r.err)
  end)

  it("follows symlinks planted in a volume only inside its own root", function()
    local work = os.tmpname()
    os.remove(work)
    assert(fs.mkdir_p(work .. "/vol"))
    assert(lfs.link("/", work .. "/vol/root", true))
    assert(lfs.link("../../../../../../../../etc", work .. "/vol/up", true))
    local r = attempt("cat /vol/root/etc/hostname /vol/up/hostname; echo planted > /vol/root/tmp/escaped; "
      .. "ls /vol/root/tmp", { "-v", work .. "/vol:/vol", "--hostname", "inner" })
    local escaped = lfs.attributes("/tmp/escaped")
    helper.sh("rm -rf " .. work)
    assert.are.equal(0, r.code, r.err)
    -- the container's /etc/hostname both times, not the host's
    assert.matches("^inner\ninner\n", r.out)
    assert.is_nil(escaped, "a file was written through the symlink on the host")
  end)
end)

-- Images and root filesystems: the built-in image, imports, pivot_root,
-- copy-on-write, the container's /dev, /sys and /proc, volumes, and hostile
-- input refused. Each test ends with the leak check (store included).
local helper = require "helper"
local lfs = require "lfs"

local STORE = helper.store
local BUSYBOX_ROOT = STORE .. "/images/busybox/rootfs"

local function sh(script)
  local r = helper.sh(script)
  assert.are.equal(0, r.code, script .. ": " .. r.err)
  return r.out
end

local function tree_digest(dir)
  -- names, modes, owners, sizes, contents and mtimes of everything below dir
  return sh("cd " .. dir .. " && tar --sort=name -cf - . | sha256sum")
end

local function tmpdir()
  return (sh("mktemp -d /tmp/lbox-spec.XXXXXX"):gsub("\n$", ""))
end

describe("images", function()
  local before, work
  before_each(function()
    before = helper.snapshot()
    work = tmpdir()
  end)
  after_each(function()
    sh("rm -rf " .. work)
    helper.assert_no_leaks(before)
  end)

  it("runs on the built-in busybox image, by name or by default", function()
    for _, args in ipairs { { "run", "busybox", "sh", "-c", "readlink /bin/sh; ls /etc" },
                            { "run", "/bin/sh", "-c", "readlink /bin/sh; ls /etc" } } do
      local r = helper.lbox_run(args)
      assert.are.equal(0, r.code, r.err)
      assert.matches("^/bin/busybox\n", r.out)
      assert.is_nil(r.out:find("debian_version"), "the host's /etc is visible")
    end
    local ls = helper.lbox_run { "image", "ls" }
    assert.matches("\nbusybox +%S+ +built%-in", ls.out)
  end)

  it("imports tarballs (plain, gzip, xz) and directories, runs them, removes them", function()
    sh("mkdir -p " .. work .. "/root && cp -a " .. BUSYBOX_ROOT .. "/. " .. work .. "/root/ && "
      .. "echo imported > " .. work .. "/root/marker && cd " .. work .. "/root && tar -cf ../img.tar . && "
      .. "gzip -k ../img.tar && xz -k ../img.tar")
    local sources = { tar = work .. "/img.tar", gz = work .. "/img.tar.gz", xz = work .. "/img.tar.xz",
                      dir = work .. "/root" }
    for kind, source in pairs(sources) do
      local name = "lbox-spec-" .. kind
      local r = helper.lbox_run { "image", "import", source, name }
      assert.are.same({ 0, name .. "\n" }, { r.code, r.out }, r.err)
      local run = helper.lbox_run { "run", name, "cat", "/marker" }
      assert.are.same({ 0, "imported\n" }, { run.code, run.out }, run.err)
      assert.matches("\n" .. name:gsub("%-", "%%-") .. " ", helper.lbox_run({ "image", "ls" }).out)
    end
    local again = helper.lbox_run { "image", "import", sources.tar, "lbox-spec-tar" }
    assert.are.equal(125, again.code)
    assert.matches('^lbox: error: image "lbox%-spec%-tar" exists', again.err)
    local rm = helper.lbox_run { "image", "rm", "lbox-spec-tar", "lbox-spec-gz", "lbox-spec-xz", "lbox-spec-dir" }
    assert.are.equal(0, rm.code, rm.err)
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox%-spec"))
  end)

  it("imports device nodes, hard links, xattrs, file capabilities and setuid bits", function()
    -- a block device of the host's, as a distribution root might carry one
    local disk = sh("ls /sys/dev/block | head -1"):match("^(%d+):(%d+)")
    local major, minor = sh("ls /sys/dev/block | head -1"):match("^(%d+):(%d+)")
    assert.is_truthy(disk, "this host has no block device")
    sh("mkdir -p " .. work .. "/root && cp -a " .. BUSYBOX_ROOT .. "/. " .. work .. "/root/ && cd " .. work .. "/root && "
      .. "mkdir nodes && mknod nodes/null c 1 3 && mknod nodes/disk b " .. major .. " " .. minor .. " && "
      .. "echo one > a && ln a b && setfattr -n trusted.lbox-a -v kept a && setfattr -n trusted.lbox -v kept b && "
      .. "cp bin/busybox ping && setcap cap_net_raw+ep ping && "
      .. "echo x > suid && chown 0:65534 suid && chmod 4755 suid && mkdir sgid && chmod 2775 sgid && "
      .. "tar --xattrs --xattrs-include='*' -cf ../img.tar .")
    finally(function() helper.lbox_run { "image", "rm", "lbox-spec-nodes-tar", "lbox-spec-nodes-dir" } end)
    for kind, source in pairs { tar = work .. "/img.tar", dir = work .. "/root" } do
      local name = "lbox-spec-nodes-" .. kind
      local r = helper.lbox_run { "image", "import", source, name }
      assert.are.equal(0, r.code, r.err)
      local root = STORE .. "/images/" .. name .. "/rootfs"
      assert.are.equal(string.format("character special file 1,3\nblock special file %s,%s\n", major, minor),
        sh("stat -c '%F %Hr,%Lr' " .. root .. "/nodes/null " .. root .. "/nodes/disk"))
      assert.are.equal(lfs.attributes(root .. "/a", "ino"), lfs.attributes(root .. "/b", "ino"), kind)
      assert.are.equal("kept\nkept\n", sh("getfattr --only-values -n trusted.lbox-a " .. root .. "/a; echo; "
        .. "getfattr --only-values -n trusted.lbox " .. root .. "/b; echo"))
      assert.matches("cap_net_raw=ep", sh("getcap " .. root .. "/ping"))
      assert.are.equal("4755 0:65534\n2775\n", sh("stat -c '%a %u:%g' " .. root .. "/suid; stat -c %a " .. root .. "/sgid"))
      -- and a container sees them, capability included
      local run = helper.lbox_run { "run", name, "sh", "-c", "ls -ln /suid; cat /b" }
      assert.are.equal(0, run.code, run.err)
      assert.matches("^%-rwsr%-xr%-x +1 0 +65534 .*\none\n$", run.out)
    end
  end)

  it("mounts the root and volumes nodev without device rules: a node in an image or a volume opens nothing", function()
    local major, minor = sh("ls /sys/dev/block | head -1"):match("^(%d+):(%d+)")
    sh("mkdir -p " .. work .. "/root " .. work .. "/vol && cp -a " .. BUSYBOX_ROOT .. "/. " .. work .. "/root/ && "
      .. "mknod " .. work .. "/root/disk b " .. major .. " " .. minor .. " && mknod " .. work .. "/root/null c 1 3 && "
      .. "mknod " .. work .. "/vol/disk b " .. major .. " " .. minor .. " && "
      .. "tar -C " .. work .. "/root -cf " .. work .. "/img.tar .")
    finally(function() helper.lbox_run { "image", "rm", "lbox-spec-nodev" } end)
    local imported = helper.lbox_run { "image", "import", work .. "/img.tar", "lbox-spec-nodev" }
    assert.are.equal(0, imported.code, imported.err)
    local probe = "for n in /disk /null /vol/disk; do head -c 1 $n >/dev/null && echo $n opened; done; "
      .. "head -c 1 /dev/zero | wc -c; grep -E ' / | /vol ' /proc/self/mountinfo | cut -d' ' -f5,6"
    for _, args in ipairs {
      { "run", "-v", work .. "/vol:/vol", "lbox-spec-nodev", "sh", "-c", probe },
      { "run", "-v", work .. "/vol:/vol:ro", "--read-only", "lbox-spec-nodev", "sh", "-c", probe },
      { "run", "-v", work .. "/vol:/vol", "--rootfs", work .. "/root", "sh", "-c", probe },
    } do
      local r = helper.lbox_run(args)
      local what = table.concat(args, " ")
      assert.are.equal(0, r.code, what .. ": " .. r.err)
      assert.is_nil(r.out:find("opened"), what .. ": " .. r.out)
      assert.are.equal(3, select(2, r.err:gsub("Permission denied", "")), what .. ": " .. r.err)
      assert.matches("^1\n", r.out, what) -- lbox's own /dev works
      assert.matches("\n/ [^\n]*nodev", r.out, what)
      assert.matches("\n/vol [^\n]*nodev", r.out, what)
    end
    -- with device rules (it may make nodes), they guard the image's nodes
    -- instead, as docker's: the disk is refused, its null opens
    -- (a volume whose host directory is itself on a nodev mount stays nodev)
    local host_nodev = sh("findmnt -no VFS-OPTIONS -T " .. work .. "/vol"):find("nodev") ~= nil
    local r = helper.lbox_run { "run", "--cap-add", "MKNOD", "-v", work .. "/vol:/vol", "lbox-spec-nodev", "sh", "-c", probe }
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("/null opened\n1\n", r.out:match("^(.-\n1\n)"), r.out)
    assert.are.equal(host_nodev and 1 or 2, select(2, r.err:gsub("Operation not permitted", "")), r.err)
    assert.is_nil(r.out:match("\n/ [^\n]*nodev"), r.out)
    assert.are.equal(host_nodev, r.out:match("\n/vol [^\n]*nodev") ~= nil, r.out)
  end)

  it("commits and exports a running container's filesystem", function()
    local core = require "lbox.core"
    local proc = helper.start { helper.lbox, "run", "-v", work .. ":/vol", "sh", "-c",
      "trap 'exit 0' TERM; echo changed > /marker; echo in-volume > /vol/f; echo ready $(hostname); sleep 30 & wait" }
    local id = helper.read_until(proc.out_fd, "ready %x+\n"):match("ready (%x+)")
    local commit = helper.lbox_run { "commit", id, "lbox-spec-committed" }
    assert.are.same({ 0, "lbox-spec-committed\n" }, { commit.code, commit.out }, commit.err)
    local export = helper.lbox_run { "export", id:sub(1, 6), work .. "/exported.tar" }
    assert.are.equal(0, export.code, export.err)
    core.kill(proc.pid, core.SIGTERM)
    assert.are.equal(0, helper.finish(proc, 10).code)
    local run = helper.lbox_run { "run", "lbox-spec-committed", "sh", "-c", "cat /marker; ls /vol 2>&1" }
    assert.are.equal(0, run.code, run.err)
    assert.matches("^changed\n", run.out)
    assert.is_nil(run.out:find("in%-volume"), "the volume went into the image")
    local listing = sh("tar -tf " .. work .. "/exported.tar")
    assert.matches("%./marker\n", listing)
    assert.is_nil(listing:find("%./proc/%d"), "/proc went into the export")
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-committed" }).code)
    local gone = helper.lbox_run { "commit", id, "lbox-spec-never" }
    assert.are.equal(1, gone.code) -- as docker: no such container
    assert.matches('^lbox: error: no such container: %x+', gone.err)
    assert.matches("no such container: %.%./x", helper.lbox_run({ "export", "../x", "/tmp/x.tar" }).err)
  end)

  it("commits and exports a container that ended and was kept", function()
    local r = helper.lbox_run { "run", "-d", "sh", "-c", "echo changed > /marker; rm /bin/ls; mkdir -p /new/dir" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    assert.is_true(helper.eventually(function()
      return helper.lbox_run({ "ps", "-a" }).out:find(id:sub(1, 12) .. ".*Exited %(0%)") ~= nil
    end))
    local mounts = helper.read_file("/proc/self/mountinfo")
    local commit = helper.lbox_run { "commit", id, "lbox-spec-ended" }
    assert.are.same({ 0, "lbox-spec-ended\n" }, { commit.code, commit.out }, commit.err)
    assert.are.equal(0, helper.lbox_run({ "export", id, work .. "/ended.tar" }).code)
    -- the layer was mounted in a namespace of its own, gone with its helper
    assert.are.equal(mounts, helper.read_file("/proc/self/mountinfo"))
    local run = helper.lbox_run { "run", "lbox-spec-ended", "sh", "-c",
      "cat /marker; ls /new; test -e /bin/ls || echo deleted stays deleted" }
    assert.are.same({ 0, "changed\ndir\ndeleted stays deleted\n" }, { run.code, run.out }, run.err)
    local listing = sh("tar -tf " .. work .. "/ended.tar")
    assert.matches("%./marker\n", listing)
    assert.is_nil(listing:find("%./bin/ls\n"), "a deleted file came back in the export")
    assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-ended" }).code)
  end)

  it("refuses to remove an image a running or kept container is made of", function()
    sh("mkdir -p " .. work .. "/root && cp -a " .. BUSYBOX_ROOT .. "/. " .. work .. "/root/ && echo layer > "
      .. work .. "/root/marker")
    assert.are.equal(0, helper.lbox_run({ "image", "import", work .. "/root", "lbox-spec-used" }).code)
    local running = helper.lbox_run { "run", "-d", "lbox-spec-used", "sleep", "60" }
    local kept = helper.lbox_run { "run", "-d", "lbox-spec-used", "true" }
    assert.are.same({ 0, 0 }, { running.code, kept.code }, running.err .. kept.err)
    local running_id, kept_id = running.out:match("^(%x+)\n$"), kept.out:match("^(%x+)\n$")
    assert.is_true(helper.eventually(function()
      return helper.lbox_run({ "ps", "-a" }).out:find(kept_id:sub(1, 12) .. ".*Exited %(0%)") ~= nil
    end))
    local rm = helper.lbox_run { "image", "rm", "lbox-spec-used" }
    assert.are.equal(125, rm.code, rm.err)
    assert.matches('^lbox: error: image "lbox%-spec%-used" is used by containers? ', rm.err)
    assert.matches(running_id:sub(1, 12), rm.err)
    assert.matches(kept_id:sub(1, 12), rm.err)
    -- both still have their layer's lower half
    local exec = helper.lbox_run { "exec", running_id, "cat", "/marker" }
    assert.are.same({ 0, "layer\n" }, { exec.code, exec.out }, exec.err)
    assert.are.equal(0, helper.lbox_run({ "commit", kept_id, "lbox-spec-from-kept" }).code)
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", running_id, kept_id }).code)
    rm = helper.lbox_run { "image", "rm", "lbox-spec-used", "lbox-spec-from-kept" }
    assert.are.equal(0, rm.code, rm.err)
  end)

  it("runs on a plain directory with --rootfs", function()
    sh("cp -a " .. BUSYBOX_ROOT .. " " .. work .. "/plain && echo plain > " .. work .. "/plain/marker")
    local r = helper.lbox_run { "run", "--rootfs", work .. "/plain", "sh", "-c", "cat /marker; echo new > /written" }
    assert.are.same({ 0, "plain\n" }, { r.code, r.out }, r.err)
    assert.are.equal("new\n", helper.read_file(work .. "/plain/written"), "--rootfs writes to the directory")
  end)

  it("pivots into the root: the host is not reachable", function()
    local marker = "lbox-host-marker-" .. os.time()
    sh("touch /tmp/" .. marker)
    local r = helper.lbox_run { "run", "sh", "-c",
      "cat /proc/self/mountinfo; echo; cd / && cd .. && pwd; ls /proc/1/root/ | tr '\\n' ' '; echo; "
      .. "find / -name '" .. marker .. "' 2>/dev/null; ls -la /proc/self/fd/ /proc/1/cwd/ >/dev/null; echo done" }
    os.remove("/tmp/" .. marker)
    assert.are.equal(0, r.code, r.err)
    -- the root is the overlay; of the host's filesystems only the /etc
    -- files lbox wrote are bound in: no host root is mounted anywhere
    assert.matches("^%d+ %d+ %S+ / / %S+ %- overlay ", r.out)
    for line in r.out:match("^(.-)\n\n"):gmatch("[^\n]+") do
      local root, point, fstype = line:match("^%d+ %d+ %S+ (%S+) (%S+) .- %- (%S+) ")
      if not ({ overlay = 1, proc = 1, sysfs = 1, tmpfs = 1, devpts = 1, mqueue = 1, cgroup2 = 1 })[fstype] then
        assert.matches("^" .. STORE:gsub("%-", "%%-") .. "/containers/%x+/[%w.]+$", root, line)
        assert.matches("^/etc/", point, line)
      end
    end
    assert.is_nil(r.out:find(marker, 1, true), "a host file was found")
    assert.matches("\n/\n", r.out)
    assert.matches("bin dev etc", r.out)
    assert.matches("done\n$", r.out)
  end)

  it("never changes the image: writes go to the container's own layer", function()
    local digest = tree_digest(BUSYBOX_ROOT)
    local r = helper.lbox_run { "run", "sh", "-c",
      "for d in $(find / -xdev -type d ! -path /proc ! -path /sys ! -path /dev); do "
      .. "echo x > $d/lbox-was-here || exit 9; done; "
      .. "echo x >> /bin/busybox; rm /bin/ls; chmod 777 /etc; echo ok" }
    assert.are.same({ 0, "ok\n" }, { r.code, r.out }, r.err)
    assert.are.equal(digest, tree_digest(BUSYBOX_ROOT))
    local fresh = helper.lbox_run { "run", "sh", "-c", "ls /lbox-was-here /bin/ls 2>&1" }
    assert.matches("No such file", fresh.out)
    assert.matches("/bin/ls", fresh.out)
  end)

  it("gives the container a fresh /dev, a read-only /sys and docker's /proc masks", function()
    local r = helper.lbox_run { "run", "sh", "-c", [[
      ls /dev | tr '\n' ' '; echo
      for link in ptmx fd stdin; do readlink /dev/$link; done
      grep -E ' /dev/pts | /sys | /proc/sys ' /proc/self/mountinfo | cut -d' ' -f5,6,9
      touch /sys/x 2>&1; echo 1 > /proc/sys/kernel/hostname 2>&1
      echo "keys=$(cat /proc/keys | wc -c) timer_list=$(cat /proc/timer_list | wc -c) acpi=$(ls /proc/acpi | wc -l)"
      head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c
      cat /etc/hostname; grep -c localhost /etc/hosts
    ]] }
    assert.are.equal(0, r.code, r.err)
    for _, node in ipairs { "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd",
                            "stdin", "stdout", "stderr" } do
      assert.matches(" " .. node .. " ", " " .. r.out, node)
    end
    assert.matches("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n", r.out)
    assert.matches("/dev/pts rw,[^ ]* devpts", r.out)
    assert.matches("/sys ro,", r.out)
    assert.matches("/proc/sys ro,", r.out)
    assert.matches("Read%-only file system", r.out)
    assert.matches("keys=0 timer_list=0 acpi=0", r.out)
    assert.matches("\n4\n4\n%x+\n2\n$", r.out)
  end)

  it("--read-only keeps the root read-only; -w sets (and makes) the working directory", function()
    local r = helper.lbox_run { "run", "--read-only", "-w", "/work/here", "sh", "-c",
      "pwd; touch /x 2>&1; touch /dev/shm/ok && echo shm-ok" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("^/work/here\n", r.out)
    assert.matches("Read%-only file system", r.out)
    assert.matches("shm%-ok", r.out)
  end)

  describe("volumes", function()
    it("binds host paths read-write, and read-only against any remount", function()
      sh("mkdir -p " .. work .. "/rw " .. work .. "/ro && echo keep > " .. work .. "/ro/f")
      local r = helper.lbox_run { "run", "-v", work .. "/rw:/rw", "-v", work .. "/ro:/ro:ro", "sh", "-c",
        "echo from-container > /rw/new; cat /ro/f; echo x > /ro/f 2>&1; "
        .. "mount -o remount,rw /ro 2>&1; echo x > /ro/f 2>&1; cat /ro/f" }
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("from-container\n", helper.read_file(work .. "/rw/new"))
      assert.are.equal("keep\n", helper.read_file(work .. "/ro/f"))
      assert.matches("^keep\n", r.out)
      assert.matches("Read%-only file system", r.out .. r.err)
      assert.matches("permission denied", r.out .. r.err)
      assert.matches("keep\n$", r.out)
    end)

    it("keeps what is mounted below a :ro volume or a --read-only root read-only too", function()
      -- the host's submounts live in a mount namespace of the test's own
      assert.are.equal(0, helper.lbox_run({ "run", "true" }).code) -- the built-in image, made on first use
      sh("mkdir -p " .. work .. "/vol/sub && cp -a " .. BUSYBOX_ROOT .. " " .. work .. "/root && mkdir "
        .. work .. "/root/sub")
      local r = helper.exec { "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", [[
        mount -t tmpfs none "$0/vol/sub" && mount -t tmpfs none "$0/root/sub" || exit 99
        "$1" run -v "$0/vol:/vol:ro" sh -c 'touch /vol/sub/x'; echo "volume $?"
        "$1" run --read-only --rootfs "$0/root" sh -c 'touch /sub/x'; echo "root $?"
        "$1" run -v "$0/vol:/vol" --rootfs "$0/root" sh -c 'touch /vol/sub/x /sub/x'; echo "writable $?"]],
        work, helper.lbox }
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("volume 1\nroot 1\nwritable 0\n", r.out, r.err)
      assert.matches("touch: /vol/sub/x: Read%-only file system\ntouch: /sub/x: Read%-only file system\n$", r.err)
    end)

    it("cannot make device nodes, on a volume or anywhere", function()
      sh("mkdir -p " .. work .. "/rw")
      local r = helper.lbox_run { "run", "-v", work .. "/rw:/rw", "sh", "-c",
        "mknod /rw/disk b 8 0; mknod /tmp/null c 1 3; grep CapBnd /proc/self/status" }
      assert.are.equal(0, r.code, r.err)
      assert.matches("mknod: /rw/disk: Operation not permitted\nmknod: /tmp/null: Operation not permitted\n", r.err)
      local bounding = tonumber(r.out:match("CapBnd:%s*(%x+)"), 16)
      assert.are.equal(0, bounding & (1 << 27), "CAP_MKNOD is kept")
      assert.are.equal(0, bounding & (1 << 21), "CAP_SYS_ADMIN is kept")
      assert.is_nil(lfs.attributes(work .. "/rw/disk"))
    end)

    it("creates a missing host directory and keeps its data when the container goes", function()
      local r = helper.lbox_run { "run", "-v", work .. "/made/here:/data", "sh", "-c", "echo kept > /data/f" }
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("kept\n", helper.read_file(work .. "/made/here/f"))
    end)

    it("cannot be pointed out of the root by a symlink in the image", function()
      sh("cp -a " .. BUSYBOX_ROOT .. " " .. work .. "/root && mkdir " .. work .. "/outside " .. work .. "/vol && "
        .. "ln -s ../../../../../../.." .. work .. "/outside " .. work .. "/root/escape && "
        .. "ln -s " .. work .. "/outside " .. work .. "/root/absolute")
      for _, target in ipairs { "/escape/sub", "/absolute/sub" } do
        local r = helper.lbox_run { "run", "--rootfs", work .. "/root", "-v", work .. "/vol:" .. target, "true" }
        assert.are.equal(0, r.code, r.err)
        assert.is_nil(io.open(work .. "/outside/sub"), target .. " escaped the root")
      end
    end)

    it("never deletes what is mounted inside a directory lbox removes", function()
      -- lbox.fs.remove_tree, in a mount namespace of the test's own
      local r = helper.exec { "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", [[
        mkdir -p "$0/tree/mnt" && mount -t tmpfs none "$0/tree/mnt" && echo precious > "$0/tree/mnt/data" &&
        DIR="$0" lua5.4 -e 'package.path = "lua/?.lua;" .. package.path' \
          -e 'print(require("lbox.fs").remove_tree(os.getenv("DIR") .. "/tree"))' &&
        cat "$0/tree/mnt/data"]], work }
      assert.are.equal(0, r.code, r.err)
      assert.matches("is a mount point: not removed", r.out)
      assert.matches("precious\n$", r.out)
    end)
  end)

  describe("bad input", function()
    local refused = helper.refused

    it("refuses a missing image or rootfs", function()
      refused({ "run", "--rootfs", "/nonexistent", "true" }, "%-%-rootfs: /nonexistent is not a directory")
      refused({ "image", "rm", "no-such-image" }, 'no image "no%-such%-image"')
      refused({ "image", "import", "/nonexistent.tar", "x" }, "no such file")
      refused({ "image", "import", "/etc/hostname", "bad name" }, "invalid image name")
    end)

    it("refuses corrupt, truncated and hostile tarballs, writing nothing", function()
      sh("cd " .. work .. " && mkdir d && echo hi > d/f && "
        .. "tar -cf good.tar d && head -c 700 good.tar > truncated.tar && head -c 4096 /dev/urandom > junk.tar && "
        .. "tar -cf climb.tar --transform 's,^,../../,' d/f && "
        .. "tar -cPf absolute.tar /etc/hostname && "
        .. "ln -s ../../../etc d/out && tar -cf symlink.tar d/out && rm d/out && "
        .. "ln -s /etc d/etc && tar -cf through.tar d/etc --transform 's,d/etc,e,' && "
        .. "printf 'e/passwd\\n' > list && rm d/etc && mkdir e && echo evil > e/passwd && "
        .. "tar -rf through.tar e/passwd && gzip -k truncated.tar && "
        -- a symlink, then a hard link of the same name (which clears nothing:
        -- its extraction may fail and leave the symlink), then a file through it
        .. "mkdir -p h/etc && ln -s /etc h/etc/x && tar -C h -cf relinked.tar etc/x && rm h/etc/x && "
        .. "echo a > h/etc/f && ln h/etc/f h/etc/x && tar -C h -rf relinked.tar etc/f etc/x && rm h/etc/x && "
        .. "mkdir h/etc/x && echo evil > h/etc/x/owned && tar -C h -rf relinked.tar etc/x/owned")
      for file, pattern in pairs {
        ["truncated.tar"] = "truncated archive", ["truncated.tar.gz"] = "truncated archive",
        ["junk.tar"] = "corrupt archive", ["climb.tar"] = "climbs out", ["absolute.tar"] = "absolute path",
        ["symlink.tar"] = "symlink points out",
        ["through.tar"] = "goes through the symlink",
        ["relinked.tar"] = "goes through the symlink etc/x",
      } do
        refused({ "image", "import", work .. "/" .. file, "lbox-spec-hostile" }, pattern)
      end
    end)

    it("refuses bad volume specs", function()
      refused({ "run", "-v", "/tmp", "true" }, '%-%-volume "/tmp": use HOST:CONTAINER%[:ro%]')
      refused({ "run", "-v", "/tmp:relative", "true" }, "the container path must be absolute")
      refused({ "run", "-v", "/tmp:/x:rx", "true" }, "use HOST:CONTAINER")
    end)

    it("aborts, leaving nothing, when a step of the root setup fails", function()
      -- a directory cannot be bound over the image's /etc/passwd file
      sh("mkdir " .. work .. "/dir")
      refused({ "run", "-v", work .. "/dir:/etc/passwd", "true" }, "cannot mount /etc/passwd: mount '.*': Not a directory")
    end)
  end)
end)

-- User namespaces (--userns=auto, --uidmap/--gidmap): the container's root
-- is a range of the host's ids, the image's files are its root's, the
-- host's files are out of its reach, the range is lbox's from /etc/subuid
-- and given back with the container.
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"
local lbox = require "lbox"
local lfs = require "lfs"
local userns = require "lbox.userns"

-- The first range lbox gives: its entry's start in /etc/subuid and /etc/subgid.
local function first_range(path)
  local entries = userns.entries(fs.read_file(path), userns.USER)
  assert(#entries > 0, "no " .. userns.USER .. " entry in " .. path)
  return entries[1][1]
end

-- The lines of a map file's text as { inside, outside, count } numbers.
local function map_lines(text)
  local lines = {}
  for a, b, c in text:gmatch("(%d+)%s+(%d+)%s+(%d+)") do lines[#lines + 1] = { tonumber(a), tonumber(b), tonumber(c) } end
  return lines
end

local function temp_dir()
  local dir = assert(io.popen("mktemp -d /tmp/lbox-userns-spec.XXXXXX")):read("l")
  return dir
end

-- The descriptors this process has open.
local function open_fds()
  local fds = {}
  for name in lfs.dir("/proc/self/fd") do
    if name:match("^%d+$") then fds[#fds + 1] = name end
  end
  table.sort(fds)
  return fds
end

describe("user namespaces", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("keeps the default: no user namespace, the host's ids", function()
    local r = helper.lbox_run { "run", "cat", "/proc/self/uid_map" }
    assert.are.equal(0, r.code, r.err)
    assert.are.same({ { 0, 0, 4294967295 } }, map_lines(r.out))
  end)

  it("makes the container's root a range of lbox's ids, the image's files its own", function()
    local dir = temp_dir()
    finally(function() fs.remove_tree(dir) end)
    assert(lfs.attributes(dir, "mode"))
    os.execute("chmod 1777 " .. dir)
    local r = helper.lbox_run { "run", "--userns=auto", "-v", dir .. ":/shared", "sh", "-c",
      "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%u %g' /bin/busybox /etc/passwd /; "
        .. "touch /shared/made /new && stat -c '%u %g' /new" }
    assert.are.equal(0, r.code, r.err)
    local uid_base, gid_base = first_range(userns.SUBUID), first_range(userns.SUBGID)
    local maps = map_lines(r.out)
    assert.are.same({ { 0, uid_base, 65536 }, { 0, gid_base, 65536 } }, { maps[1], maps[2] })
    local rest = r.out:gsub("^.-\n.-\n", "")
    assert.are.equal("0\n0 0\n0 0\n0 0\n0 0\n", rest)
    -- and on the host, what it made is the range's
    local made = lfs.attributes(dir .. "/made")
    assert.are.same({ uid_base, gid_base }, { made.uid, made.gid })
  end)

  it("leaves a host root's file out of the container root's reach", function()
    local dir = temp_dir()
    finally(function() fs.remove_tree(dir) end)
    fs.write_file(dir .. "/secret", "host root's\n")
    fs.write_file(dir .. "/public", "readable\n")
    -- the directory open to all (mktemp's is 0700): only the files' modes keep it out
    os.execute(string.format("chmod 755 %s; chmod 600 %s/secret; chmod 644 %s/public", dir, dir, dir))
    local r = helper.lbox_run { "run", "--userns=auto", "-v", dir .. ":/host", "sh", "-c",
      "stat -c '%u %g' /host/secret; cat /host/secret; echo read=$?; echo x >> /host/public; echo write=$?; "
        .. "chown 0 /host/public; echo chown=$?; cat /host/public" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("^65534 65534\n", r.out)
    assert.matches("read=1\nwrite=1\nchown=1\nreadable\n$", r.out)
    assert.matches("Permission denied", r.err)
    assert.are.equal("readable\n", helper.read_file(dir .. "/public"))
    local attr = lfs.attributes(dir .. "/public")
    assert.are.same({ 0, 0 }, { attr.uid, attr.gid })
  end)

  it("holds capabilities in the container's namespaces only, every one of them given", function()
    local dir = temp_dir()
    finally(function() fs.remove_tree(dir) end)
    fs.write_file(dir .. "/secret", "host root's\n")
    os.execute(string.format("chmod 755 %s; chmod 600 %s/secret", dir, dir))
    local r = helper.lbox_run { "run", "--userns=auto", "--cap-add", "ALL", "--security-opt", "seccomp=unconfined",
      "-v", dir .. ":/host", "sh", "-c",
      "grep CapEff /proc/self/status; cat /host/secret; echo read=$?; mknod /tmp/disk b 8 0; echo mknod=$?; "
        .. "hostname inner; echo hostname=$?; mkdir /tmp/m; mount -t tmpfs none /tmp/m; echo mount=$?" }
    assert.are.equal(0, r.code, r.err)
    local last = tonumber(helper.read_file("/proc/sys/kernel/cap_last_cap"))
    assert.matches(string.format("CapEff:%%s+%016x\n", (1 << (last + 1)) - 1), r.out)
    assert.matches("read=1\nmknod=1\nhostname=0\nmount=0\n$", r.out)
  end)

  it("gives each running container a range of its own, and takes it back at its end", function()
    local first = helper.lbox_run { "run", "-d", "--userns=auto", "sleep", "600" }
    assert.are.equal(0, first.code, first.err)
    local id = first.out:match("%x+")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local state = helper.read_file(helper.store .. "/containers/" .. id .. "/state.json")
    assert.matches('"userns"', state)
    local inside = helper.lbox_run { "exec", id, "cat", "/proc/self/uid_map" }
    local second = helper.lbox_run { "run", "--userns=auto", "cat", "/proc/self/uid_map" }
    assert.are.equal(0, inside.code, inside.err)
    assert.are.equal(0, second.code, second.err)
    local a, b = map_lines(inside.out)[1], map_lines(second.out)[1]
    assert.are_not.equal(a[2], b[2])
    assert.is_true(a[2] + a[3] <= b[2] or b[2] + b[3] <= a[2], "ranges overlap")
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", id }).code)
    -- given back: the next container has the first range again
    local third = helper.lbox_run { "run", "--userns=auto", "cat", "/proc/self/uid_map" }
    assert.are.equal(first_range(userns.SUBUID), map_lines(third.out)[1][2])
  end)

  it("keeps a container's range when the monitor starts it again", function()
    local dir = temp_dir()
    os.execute("chmod 1777 " .. dir)
    local first = helper.lbox_run { "run", "-d", "--userns=auto", "sleep", "600" }
    assert.are.equal(0, first.code, first.err)
    local first_id = first.out:match("%x+")
    -- it writes its map at each start, and ends once told to
    local again = helper.lbox_run { "run", "-d", "--userns=auto", "--restart", "on-failure:1", "-v", dir .. ":/out",
      "sh", "-c", "cat /proc/self/uid_map >> /out/maps; while [ ! -e /out/go ]; do sleep 0.05; done; exit 1" }
    assert.are.equal(0, again.code, again.err)
    local id = again.out:match("%x+")
    finally(function()
      -- one at a time: rm stops at the first it does not find
      helper.lbox_run { "rm", "-f", first_id }
      helper.lbox_run { "rm", "-f", id }
      fs.remove_tree(dir)
    end)
    assert.is_true(helper.eventually(function() return helper.read_file(dir .. "/maps") ~= nil end))
    -- the first range is free when it starts again: it keeps its own, which its layer has
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", first_id }).code)
    fs.write_file(dir .. "/go", "")
    assert.is_true(helper.eventually(function()
      return #map_lines(helper.read_file(dir .. "/maps") or "") == 2
    end), helper.read_file(dir .. "/maps"))
    -- ended for good (on-failure:1), before its removal
    assert.is_true(helper.eventually(function()
      local inspected = helper.lbox_run { "inspect", id }
      return inspected.out:find('"status":"exited"', 1, true) ~= nil
    end))
    local maps = map_lines(helper.read_file(dir .. "/maps"))
    assert.are.same(maps[1], maps[2])
    assert.are_not.equal(first_range(userns.SUBUID), maps[1][2])
  end)

  it("runs exec in the container's user namespace, as its root or a user of it", function()
    local run = helper.lbox_run { "run", "-d", "--userns=auto", "sleep", "600" }
    assert.are.equal(0, run.code, run.err)
    local id = run.out:match("%x+")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local r = helper.lbox_run { "exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/mine; stat -c %u /tmp/mine" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("^0\n", r.out)
    assert.are.equal(first_range(userns.SUBUID), map_lines(r.out:match("^.-\n(.-\n)"))[1][2])
    assert.matches("\n0\n$", r.out)
    local user = helper.lbox_run { "exec", "-u", "1000", id, "sh", "-c", "touch /tmp/his; stat -c %u /tmp/his" }
    assert.are.equal(0, user.code, user.err)
    assert.are.equal("1000\n", user.out)
    local upper = lfs.attributes(helper.store .. "/containers/" .. id .. "/upper/tmp/his")
    assert.are.equal(first_range(userns.SUBUID) + 1000, upper.uid)
  end)

  it("copies in with the container's owners, and gives exec -t -u its terminal", function()
    local run = helper.lbox_run { "run", "-d", "--userns=auto", "sleep", "600" }
    assert.are.equal(0, run.code, run.err)
    local id = run.out:match("%x+")
    local dir = temp_dir()
    finally(function()
      helper.lbox_run { "rm", "-f", id }
      fs.remove_tree(dir)
    end)
    fs.write_file(dir .. "/file", "copied\n")
    local copied = helper.lbox_run { "cp", dir .. "/file", id .. ":/tmp/" }
    assert.are.equal(0, copied.code, copied.err)
    local r = helper.lbox_run { "exec", id, "stat", "-c", "%u %g", "/tmp/file" }
    assert.are.equal("0 0\n", r.out, r.err)
    local upper = lfs.attributes(helper.store .. "/containers/" .. id .. "/upper/tmp/file")
    assert.are.equal(first_range(userns.SUBUID), upper.uid)
    local term = helper.start_pty { helper.lbox, "exec", "-t", "-u", "1000", id, "sh", "-c",
      "stat -L -c 'pty=%u:%g' /proc/self/fd/1" }
    assert.is_true(helper.expect(term, "pty=1000:5", 60), term.output)
    assert.are.equal(0, helper.finish_pty(term, 60))
  end)

  it("commits and exports its files with the owners the container sees, running or ended", function()
    local run = helper.lbox_run { "run", "-d", "--userns=auto", "sh", "-c",
      "echo x > /made; chown 1000:1001 /made; touch /ready; sleep 60" }
    assert.are.equal(0, run.code, run.err)
    local id = run.out:match("%x+")
    local dir = temp_dir()
    finally(function()
      helper.lbox_run { "rm", "-f", id }
      helper.lbox_run { "image", "rm", "userns-spec" }
      fs.remove_tree(dir)
    end)
    assert.is_true(helper.eventually(function()
      return helper.lbox_run({ "exec", id, "test", "-e", "/ready" }).code == 0
    end))
    local exported = helper.lbox_run { "export", id, dir .. "/running.tar" }
    assert.are.equal(0, exported.code, exported.err)
    local listing = helper.sh("tar -tvf " .. dir .. "/running.tar --numeric-owner ./made ./bin/busybox").out
    assert.matches("1000/1001 .- %./made", listing)
    assert.matches("0/0 .- %./bin/busybox", listing)
    assert.are.equal(0, helper.lbox_run({ "stop", id }).code)
    local committed = helper.lbox_run { "commit", id, "userns-spec" }
    assert.are.equal(0, committed.code, committed.err)
    local r = helper.lbox_run { "run", "userns-spec", "stat", "-c", "%u %g", "/made", "/bin/busybox" }
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("1000 1001\n0 0\n", r.out)
  end)

  it("gives the container its terminal as root:tty", function()
    local term = helper.start_pty { helper.lbox, "run", "-t", "--userns=auto", "sh", "-c",
      "stat -c 'console=%u:%g' /dev/console; id -u" }
    assert.is_true(helper.expect(term, "console=0:5", 60), term.output)
    assert.are.equal(0, helper.finish_pty(term, 60))
  end)

  it("takes maps of one's own (--uidmap, --gidmap)", function()
    local r = helper.lbox_run { "run", "--uidmap", "0:3000000000:65536", "--gidmap", "0:3100000000:1000",
      "--gidmap", "1000:3200000000:10", "sh", "-c", "cat /proc/self/uid_map; echo; cat /proc/self/gid_map; "
        .. "stat -c '%u %g' /bin/busybox" }
    assert.are.equal(0, r.code, r.err)
    local uid, gid = r.out:match("^(.-)\n\n(.*)$")
    assert.are.same({ { 0, 3000000000, 65536 } }, map_lines(uid))
    assert.are.same({ { 0, 3100000000, 1000 }, { 1000, 3200000000, 10 } }, map_lines(gid))
    assert.matches("\n0 0\n$", r.out)
  end)

  it("gives a --device as the host's node, bound", function()
    local r = helper.lbox_run { "run", "--userns=auto", "--device", "/dev/zero:/dev/nothing", "sh", "-c",
      "head -c 4 /dev/nothing | od -An -tx1" }
    assert.are.equal(0, r.code, r.err)
    assert.matches("00 00 00 00", r.out)
  end)

  it("refuses what a user namespace cannot have, in one line, exit 125", function()
    local other = helper.lbox_run { "run", "-d", "sleep", "600" }
    assert.are.equal(0, other.code, other.err)
    local other_id = other.out:match("%x+")
    finally(function() helper.lbox_run { "rm", "-f", other_id } end)
    for _, case in ipairs {
      { { "--userns=auto", "--privileged" }, "^lbox: error: %-%-userns: conflicts with %-%-privileged" },
      { { "--userns=auto", "--network", "host" }, "^lbox: error: %-%-userns: conflicts with %-%-network host" },
      { { "--userns=auto", "--network", "container:" .. other_id },
        "^lbox: error: %-%-userns: conflicts with sharing another container's net namespace" },
      { { "--userns=auto", "--rootfs", helper.store .. "/images/busybox/rootfs" },
        "^lbox: error: %-%-userns: conflicts with %-%-rootfs" },
      { { "--userns=maybe" }, '^lbox: error: %-%-userns: "maybe": use host or auto' },
      { { "--uidmap", "0:100" }, '^lbox: error: %-%-uidmap: "0:100": use CONTAINER:HOST:SIZE' },
      { { "--uidmap", "0:100000:10", "--uidmap", "5:200000:10" }, "^lbox: error: %-%-uidmap: 0:100000:10 overlaps" },
      { { "--userns=auto", "--uidmap", "0:100000:10" }, "^lbox: error: %-%-userns: give %-%-userns or %-%-uidmap" },
      { { "--uidmap", "1:100000:10" }, "^lbox: error: %-%-uidmap: maps no uid 0" },
      { { "--uidmap", "0:100000:10", "--privileged" }, "^lbox: error: %-%-uidmap: conflicts with %-%-privileged" },
    } do
      local args = { "run" }
      for _, word in ipairs(case[1]) do args[#args + 1] = word end
      args[#args + 1] = "true"
      local r = helper.lbox_run(args)
      assert.are.equal(125, r.code, table.concat(case[1], " ") .. ": " .. r.err)
      assert.matches(case[2], r.err)
      assert.are.equal(1, select(2, r.err:gsub("\n", "")), r.err)
    end
  end)

  it("copies the image into the range where it cannot idmap it, and lets go of every descriptor", function()
    local fds = open_fds()
    userns.IDMAP = false
    finally(function() userns.IDMAP = true end)
    local r, w = assert(core.pipe())
    local box = lbox.container { command = { "sh", "-c", "stat -c '%u %g' /bin/busybox /etc/passwd; cat /proc/self/uid_map" },
      userns = "auto", stdio = { stdout = w } }
    box:start()
    core.close(w)
    local dir = helper.store .. "/containers/" .. box.id
    local copy = lfs.attributes(dir .. "/lower/bin/busybox")
    local status = box:wait()
    local out = {}
    repeat
      local chunk = core.read(r, 65536)
      out[#out + 1] = chunk
    until not chunk or chunk == ""
    core.close(r)
    assert.are.equal(0, status.exit_code)
    assert.are.equal(first_range(userns.SUBUID), copy.uid)
    assert.matches("^0 0\n0 0\n", table.concat(out))
    assert.are.same(fds, open_fds())
  end)

  describe("lbox's entries in the subordinate id files", function()
    local dir
    before_each(function() dir = temp_dir() end)
    after_each(function() fs.remove_tree(dir) end)

    it("makes one when there is none, above the others", function()
      local path = dir .. "/subuid"
      fs.write_file(path, "alice:100000:65536\nbob:2147483648:65536")
      local entries = userns.ensure_entries(path, "lbox")
      assert.are.same({ { 2147483648 + 65536, userns.POOL_SIZE } }, entries)
      assert.are.equal("alice:100000:65536\nbob:2147483648:65536\nlbox:2147549184:" .. userns.POOL_SIZE .. "\n",
        helper.read_file(path))
      -- and keeps it
      assert.are.same(entries, userns.ensure_entries(path, "lbox"))
    end)

    it("makes the file when there is none", function()
      local path = dir .. "/subgid"
      assert.are.same({ { userns.POOL_START, userns.POOL_SIZE } }, userns.ensure_entries(path, "lbox"))
      assert.are.equal("lbox:" .. userns.POOL_START .. ":" .. userns.POOL_SIZE .. "\n", helper.read_file(path))
    end)

    it("uses the entries an administrator gave", function()
      local path = dir .. "/subuid"
      fs.write_file(path, "lbox:500000:131072\n# a comment\nlbox:900000:65536\n")
      assert.are.same({ { 500000, 131072 }, { 900000, 65536 } }, userns.ensure_entries(path, "lbox"))
    end)
  end)
end)

-- docker's flags real workloads need: --ulimit, --tmpfs, --shm-size,
-- --add-host, --dns, --init. Bad input: one line, exit 125, nothing left.
local core = require "lbox.core"
local helper = require "helper"

-- mount options of `target` as the container's mountinfo gives them: per
-- mount, then the superblock's
local MOUNT_OPTIONS = [[mo() { awk -v t="$1" '$5 == t { for (i = 7; $i != "-"; i++); print $6, $(i + 3) }' ]]
  .. [[/proc/self/mountinfo; }; mo]]

describe("workload flags", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  local function run(args)
    local r = helper.lbox_run(args)
    assert.are.equal(0, r.code, table.concat(args, " ") .. ": " .. r.err)
    return r.out
  end

  local refused = helper.refused

  it("--ulimit sets soft and hard limits; open files default to docker's, as far as lbox may raise them", function()
    assert.are.equal("100 200\n0 0\nunlimited unlimited\n", run { "run", "--ulimit", "nofile=100:200",
      "--ulimit", "core=0", "--ulimit", "stack=unlimited", "sh", "-c",
      "echo $(ulimit -Sn) $(ulimit -Hn); echo $(ulimit -Sc) $(ulimit -Hc); echo $(ulimit -Ss) $(ulimit -Hs)" })
    -- without CAP_SYS_RESOURCE (some hosts' root), only up to lbox's own hard limit
    local _, hard = core.getrlimit("nofile")
    local caps = helper.read_file("/proc/self/status"):match("CapEff:%s*(%x+)")
    local nr_open = tonumber(helper.read_file("/proc/sys/fs/nr_open"))
    local expected = (tonumber(caps, 16) & (1 << 24)) ~= 0 and math.min(1048576, nr_open) or hard
    assert.are.equal(expected .. " " .. expected .. "\n", run { "run", "sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn)" })
  end)

  it("lbox exec runs with the container's ulimits, as docker exec", function()
    local id = run({ "run", "-d", "--ulimit", "nofile=100:200", "--ulimit", "core=0", "sleep", "600" }):match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    assert.are.equal("100 200 0\n", run { "exec", id, "sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn) $(ulimit -Sc)" })
  end)

  it("--tmpfs mounts with docker's defaults or the options given; --shm-size sizes /dev/shm", function()
    local out = run { "run", "--tmpfs", "/data", "--tmpfs", "/run/x:size=1m,exec,mode=700,uid=65534",
      "--shm-size", "2m", "sh", "-c", MOUNT_OPTIONS .. " /data; " .. MOUNT_OPTIONS .. " /run/x; "
      .. MOUNT_OPTIONS .. " /dev/shm; stat -c '%a %u' /data /run/x; head -c 3m /dev/zero 2>/dev/null > /dev/shm/f; "
      .. "ls -l /dev/shm/f | awk '{print $5}'" }
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    -- mode 1777 and no size: not shown (a kernel may add inode64)
    assert.matches("^rw,nosuid,nodev,noexec,[^ ]* rw", lines[1])
    assert.is_nil(lines[1]:find("size=") or lines[1]:find("mode="), lines[1])
    assert.matches("^rw,nosuid,nodev,[^ ]* rw,size=1024k,mode=700,uid=65534", lines[2])
    assert.is_nil(lines[2]:find("noexec"))
    assert.matches("^rw,nosuid,nodev,noexec,[^ ]* rw,size=2048k", lines[3])
    assert.are.same({ "1777 0", "700 65534" }, { lines[4], lines[5] })
    -- 3m written, 2m kept: the rest did not fit
    assert.are.equal(tostring(2 * 1024 * 1024), lines[#lines])
  end)

  it("--add-host and --dns write /etc/hosts and /etc/resolv.conf", function()
    local out = run { "run", "-h", "box", "--add-host", "db:10.0.0.5", "--add-host", "six:[fd00::1]",
      "--dns", "9.9.9.9", "--dns", "2620:fe::fe", "sh", "-c", "cat /etc/hosts; echo --; cat /etc/resolv.conf" }
    local hosts, resolv = out:match("^(.-)%-%-\n(.*)$")
    assert.are.equal("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.5\tdb\n"
      .. "fd00::1\tsix\n127.0.1.1\tbox\n", hosts)
    assert.matches("nameserver 9%.9%.9%.9\nnameserver 2620:fe::fe\n$", resolv)
    assert.are.equal(2, select(2, resolv:gsub("nameserver", "")), "the host's nameservers are replaced")
    -- the host's search and options lines stay
    for line in (helper.read_file("/etc/resolv.conf") or ""):gmatch("[^\n]+") do
      if line:match("^search ") or line:match("^options ") then assert.matches(line, resolv, 1, true) end
    end
  end)

  describe("--init", function()
    it("reaps orphans that end, which a shell as PID 1 leaves as zombies", function()
      -- PID 1 (or the init's child) becomes a sleep, which reaps nothing
      local script = "(sh -c 'sleep 0.1 & exit 0'; sleep 0.6; ps -o stat,comm | grep -c '^Z') & exec sleep 1"
      assert.are.equal("1\n", run { "run", "sh", "-c", script })
      assert.are.equal("0\n", run { "run", "--init", "sh", "-c", script })
    end)

    it("passes signals on to the command and exits as it did", function()
      local proc = helper.start { helper.lbox, "run", "--init", "sh", "-c",
        "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done" }
      helper.read_until(proc.out_fd, "ready\n")
      core.kill(proc.pid, core.SIGTERM)
      local r = helper.finish(proc, 10)
      assert.are.same({ 7, "got TERM\n" }, { r.code, r.out }, r.err)
      assert.are.equal(137, helper.lbox_run({ "run", "--init", "sh", "-c", "kill -9 $$" }).code)
      local missing = helper.lbox_run { "run", "--init", "busybox", "no-such-command" }
      assert.are.equal(127, missing.code)
      assert.matches('"no%-such%-command": executable file not found', missing.err)
      assert.are.equal("1\n", run { "run", "--init", "sh", "-c", "ps -o pid,comm | grep -c '^ *1 lbox'" })
    end)
  end)

  it("lbox top lists a running container's processes, and only those, as ps shows them", function()
    local r = helper.lbox_run { "run", "-d", "sh", "-c", "sleep 101 & exec sleep 102" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local top = helper.lbox_run { "top", id:sub(1, 8) }
    assert.are.equal(0, top.code, top.err)
    local lines = {}
    for line in top.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.matches("^UID +PID +PPID .*CMD$", lines[1])
    assert.are.equal(3, #lines, top.out)
    assert.matches("sleep 10[12]$", lines[2])
    assert.matches("sleep 10[12]$", lines[3])
    local pid = helper.read_file(helper.store .. "/containers/" .. id .. "/state.json"):match('"pid":(%d+)')
    local custom = helper.lbox_run { "top", id, "-o", "pid,comm" }
    assert.are.equal(0, custom.code, custom.err)
    assert.matches("^ *PID COMMAND\n", custom.out)
    assert.matches("\n *" .. pid .. " sleep\n", custom.out)
    local bad = helper.lbox_run { "top", id, "-o", "comm" }
    assert.are.equal(125, bad.code)
    assert.matches("^lbox: error: ps %-o comm: its output has no PID column", bad.err)
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", id }).code)
    local gone = helper.lbox_run { "top", id }
    assert.are.equal(1, gone.code) -- no such container, as kill and docker
    assert.matches("^lbox: error: [^\n]+\n$", gone.err)
  end)

  it("lbox pause freezes a container, unpause thaws it; rm -f ends a paused one", function()
    local dir = helper.sh("mktemp -d /tmp/lbox-spec.XXXXXX").out:gsub("\n$", "")
    finally(function() helper.sh("rm -rf " .. dir) end)
    local r = helper.lbox_run { "run", "-d", "-v", dir .. ":/out", "sh", "-c",
      "i=0; while true; do i=$((i + 1)); echo $i > /out/n.new; mv /out/n.new /out/n; sleep 0.05; done" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local function count() return tonumber(helper.read_file(dir .. "/n") or "0") end
    assert.is_true(helper.eventually(function() return count() > 0 end, 5))
    local short = id:sub(1, 12)
    local pause = helper.lbox_run { "pause", short }
    assert.are.same({ 0, short .. "\n" }, { pause.code, pause.out }, pause.err)
    local twice = helper.lbox_run { "pause", short }
    assert.are.same({ 1, "lbox: error: container " .. short .. " is already paused\n" }, { twice.code, twice.err })
    local frozen_at = count()
    helper.sleep(0.5)
    assert.are.equal(frozen_at, count(), "the loop went on while paused")
    assert.matches('"paused":true', helper.lbox_run({ "inspect", id }).out)
    assert.matches(short .. " .* Up [^\n]* %(Paused%)", helper.lbox_run({ "ps" }).out)
    local exec = helper.lbox_run { "exec", id, "true" }
    assert.are.equal(1, exec.code)
    assert.matches("is paused: lbox unpause it first", exec.err)
    assert.are.equal(0, helper.lbox_run({ "unpause", id }).code)
    assert.is_true(helper.eventually(function() return count() > frozen_at end, 5), "not thawed")
    local again = helper.lbox_run { "unpause", id }
    assert.are.same({ 1, "lbox: error: container " .. id .. " is not paused\n" }, { again.code, again.err })
    -- a frozen process takes no signal until thawed: rm -f thaws it first
    assert.are.equal(0, helper.lbox_run({ "pause", id }).code)
    local rm = helper.lbox_run({ "rm", "-f", id }, { timeout = 15 })
    assert.are.equal(0, rm.code, rm.err)
  end)

  describe("--restart", function()
    local function recorded(id)
      return require("cjson").decode(helper.lbox_run({ "inspect", id }).out)[1]
    end

    it("on-failure:N starts a failing container again N times, in its own layer", function()
      local r = helper.lbox_run { "run", "-d", "--restart", "on-failure:2", "--name", "lbox-spec-restart", "sh", "-c",
        "echo run >> /count; cat /count | wc -l; exit 3" }
      assert.are.equal(0, r.code, r.err)
      local id = r.out:match("^(%x+)\n$")
      finally(function() helper.lbox_run { "rm", "-f", id } end)
      assert.is_true(helper.eventually(function()
        local s = recorded(id)
        return s.status == "exited" and s.restart_count == 2
      end, 10), helper.lbox_run({ "inspect", id }).out)
      helper.sleep(0.5)
      local s = recorded(id)
      assert.are.same({ "exited", 3, 2 }, { s.status, s.exit_code, s.restart_count })
      -- the same container each time: its name, and its files kept
      assert.are.equal("1\n2\n3\n", helper.lbox_run({ "logs", "lbox-spec-restart" }).out)
      assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
    end)

    it("always restarts a container that ends, until lbox stop", function()
      local r = helper.lbox_run { "run", "-d", "--restart", "always", "sh", "-c", "echo up; sleep 0.2" }
      assert.are.equal(0, r.code, r.err)
      local id = r.out:match("^(%x+)\n$")
      finally(function() helper.lbox_run { "rm", "-f", id } end)
      assert.is_true(helper.eventually(function() return (recorded(id).restart_count or 0) >= 2 end, 10))
      assert.are.equal(0, helper.lbox_run({ "stop", id }).code)
      local count = recorded(id).restart_count
      helper.sleep(1)
      local s = recorded(id)
      assert.are.same({ "exited", count }, { s.status, s.restart_count })
      assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
    end)
  end)

  it("lbox restart stops a detached container and its monitor starts it again", function()
    local r = helper.lbox_run { "run", "-d", "--name", "lbox-spec-restarted", "sh", "-c",
      "trap 'exit 0' TERM; echo start; while true; do sleep 0.1; done" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    local function pid() return helper.read_file(helper.store .. "/containers/" .. id .. "/state.json"):match('"pid":(%d+)') end
    local first_pid = pid()
    local restart = helper.lbox_run { "restart", "lbox-spec-restarted" }
    assert.are.same({ 0, "lbox-spec-restarted\n" }, { restart.code, restart.out }, restart.err)
    assert.are_not.equal(first_pid, pid())
    assert.matches(" Up [^\n]*lbox%-spec%-restarted\n", helper.lbox_run({ "ps" }).out)
    assert.are.equal("start\nstart\n", helper.lbox_run({ "logs", id }).out)
    assert.are.equal(0, helper.lbox_run({ "stop", id }).code)
    local ended = helper.lbox_run { "restart", id }
    assert.are.equal(1, ended.code)
    assert.matches("lbox restarts running containers started with %-d", ended.err)
    assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
  end)

  it("lbox cp copies files and directories out of a container, as it sees them, owned by the caller", function()
    local dir = helper.sh("mktemp -d /tmp/lbox-spec.XXXXXX").out:gsub("\n$", "")
    finally(function() helper.sh("rm -rf " .. dir) end)
    local r = helper.lbox_run { "run", "-d", "sh", "-c", "mkdir -p /data/sub && echo hi > /data/sub/f && "
      .. "chown 1234 /data/sub/f && ln -s /etc /data/etc && echo inside > /etc/marker && echo ready && sleep 600" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    assert.is_true(helper.eventually(function() return helper.lbox_run({ "logs", id }).out == "ready\n" end, 5))
    assert.are.equal(0, helper.lbox_run({ "cp", id .. ":/data", dir }).code)
    assert.are.equal("hi\n", helper.read_file(dir .. "/data/sub/f"))
    assert.are.equal("0\n/etc\n", helper.sh("stat -c %u " .. dir .. "/data/sub/f; readlink " .. dir .. "/data/etc").out)
    -- a symlink on the way resolves in the container, not on the host
    assert.are.equal(0, helper.lbox_run({ "cp", id .. ":/data/etc/marker", dir .. "/copied" }).code)
    assert.are.equal("inside\n", helper.read_file(dir .. "/copied"))
    local missing = helper.lbox_run { "cp", id .. ":/nope", dir }
    assert.are.equal(125, missing.code)
    assert.matches("^lbox: error: /nope: no such file or directory in ", missing.err)
    assert.are.equal("", helper.sh("ls -A " .. dir .. " | grep lbox-cp || true").out, "staging left behind")
  end)

  it("lbox cp copies into a container, running or ended and kept, owned by its root, as it sees its paths", function()
    local dir = helper.sh("mktemp -d /tmp/lbox-spec.XXXXXX").out:gsub("\n$", "")
    finally(function() helper.sh("rm -rf " .. dir) end)
    assert.are.equal(0, helper.sh("mkdir -p " .. dir .. "/src/sub && echo one > " .. dir .. "/src/sub/f && chmod 640 "
      .. dir .. "/src/sub/f && ln -s /nowhere " .. dir .. "/src/link && echo single > " .. dir .. "/file && chown -R "
      .. "1234:1234 " .. dir .. "/src " .. dir .. "/file").code)
    local r = helper.lbox_run { "run", "-d", "sh", "-c",
      "mkdir /data && ln -s /data /via && ln -s / /escape && echo ready && sleep 600" }
    assert.are.equal(0, r.code, r.err)
    local id = r.out:match("^(%x+)\n$")
    finally(function() helper.lbox_run { "rm", "-f", id } end)
    assert.is_true(helper.eventually(function() return helper.lbox_run({ "logs", id }).out == "ready\n" end, 5))
    local function cp(from, to)
      local copied = helper.lbox_run { "cp", from, id .. ":" .. to }
      assert.are.equal(0, copied.code, copied.err)
    end
    cp(dir .. "/src", "/data")               -- into a directory
    cp(dir .. "/src", "/fresh")              -- as a new one
    cp(dir .. "/src/.", "/contents")         -- its contents
    cp(dir .. "/file", "/via/renamed")       -- through the container's symlink
    cp(dir .. "/file", "/escape/lbox-spec-escape") -- its / is its own, not the host's
    local tarball = helper.sh("tar -C " .. dir .. " -cf - --owner=4321 --group=77 --numeric-owner file | "
      .. helper.lbox .. " cp - " .. id .. ":/data")
    assert.are.equal(0, tarball.code, tarball.err)
    assert.are.equal(table.concat({
      "/contents/link 0:0 link /nowhere", "/contents/sub/f 0:0 640 one",
      "/data/file 4321:77 644 single", "/data/renamed 0:0 644 single",
      "/data/src/link 0:0 link /nowhere", "/data/src/sub/f 0:0 640 one",
      "/fresh/link 0:0 link /nowhere", "/fresh/sub/f 0:0 640 one", "/lbox-spec-escape 0:0 644 single", "" }, "\n"),
      helper.lbox_run({ "exec", id, "sh", "-c", "for f in $(find /contents /data /fresh /lbox-spec-escape "
        .. "! -type d | sort); do if [ -L $f ]; then echo $f $(stat -c %u:%g $f) link $(readlink $f); "
        .. "else echo $f $(stat -c '%u:%g %a' $f) $(cat $f); fi; done" }).out)
    assert.is_nil(helper.read_file("/lbox-spec-escape"))
    -- bad input: one line, exit 125
    for _, case in ipairs {
      { { dir .. "/src", id .. ":/data/renamed" }, "cannot copy directory .* over file /data/renamed" },
      { { dir .. "/file", id .. ":/nodir/x" }, "/nodir/x: no such directory in " },
      { { dir .. "/nope", id .. ":/data" }, "nope: no such file or directory" },
    } do
      local answer = helper.lbox_run { "cp", table.unpack(case[1]) }
      assert.are.equal(125, answer.code, answer.err)
      assert.matches("^lbox: error: [^\n]*" .. case[2] .. "[^\n]*\n$", answer.err)
    end

    -- an ended, kept container: into its layer
    assert.are.equal(0, helper.lbox_run({ "stop", "-t", "0", id }).code)
    cp(dir .. "/file", "/after")
    assert.are.equal(0, helper.lbox_run({ "export", id, dir .. "/out.tar" }).code)
    assert.matches("%-rw%-r%-%-r%-%- 0/0 +7 [^\n]* %./after\n",
      helper.sh("tar -tvf " .. dir .. "/out.tar --numeric-owner ./after").out)
  end)

  it("refuses bad values: one line, exit 125, nothing left", function()
    refused({ "run", "-d", "--restart", "sometimes", "true" }, '%-%-restart "sometimes": use no, always')
    refused({ "run", "-d", "--restart", "on-failure:x", "true" }, "on%-failure%[:N%]")
    refused({ "run", "--restart", "always", "true" }, "%-%-restart needs %-d")
    refused({ "run", "-d", "--rm", "--restart", "always", "true" }, "%-%-restart and %-%-rm conflict")
    refused({ "run", "--ulimit", "files=10", "true" }, '%-%-ulimit "files=10": unknown limit "files"')
    refused({ "run", "--ulimit", "nofile", "true" }, "use NAME=SOFT%[:HARD%]")
    refused({ "run", "--ulimit", "nofile=20:10", "true" }, "soft limit 20 is above the hard limit 10")
    refused({ "run", "--ulimit", "nofile=x", "true" }, "whole numbers")
    refused({ "run", "--tmpfs", "data", "true" }, "absolute path")
    refused({ "run", "--tmpfs", "/data:size=lots", "true" }, 'invalid size "lots"')
    refused({ "run", "--tmpfs", "/data:suid,bogus", "true" }, 'unknown tmpfs option "bogus"')
    refused({ "run", "--shm-size", "0", "true" }, "%-%-shm%-size: invalid size")
    refused({ "run", "--add-host", "db", "true" }, '%-%-add%-host "db": use NAME:IP')
    refused({ "run", "--add-host", "db:300.1.1.1", "true" }, "use NAME:IP")
    refused({ "run", "--add-host", "gw:host-gateway", "true" }, "host%-gateway needs a bridge network")
    refused({ "run", "--dns", "dns.example", "true" }, '%-%-dns "dns.example": an IPv4 or IPv6 address expected')
  end)
end)

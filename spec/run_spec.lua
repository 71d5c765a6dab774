-- lbox run: namespaces, PID 1, the handoff, stdio, terminals, signals and
-- exit codes, each against a real container, each followed by a leak check.
local core = require "lbox.core"
local helper = require "helper"
local lfs = require "lfs"

local PROBE = helper.PROBE
local FIXTURES = helper.WITH_FIXTURES

-- lbox run with the fixtures mounted, then `args`
local function run(args, opts)
  return helper.lbox_run({ "run", FIXTURES[1], FIXTURES[2], table.unpack(args) }, opts)
end

local function facts(text)
  local t = {}
  for key, value in text:gmatch("([%w._]+)=([^\n]*)") do t[key] = value end
  return t
end

describe("lbox run", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("runs the command as PID 1, seeing only its own processes", function()
    local r = run { PROBE }
    assert.are.equal(0, r.code, r.err)
    local seen = facts(r.out)
    assert.are.equal("1", seen.pid)
    -- the probe's shell and its pipeline (subshell, ls, wc): nothing of the host
    assert.is_true(tonumber(seen.processes) <= 4, r.out)
    local ps = helper.lbox_run { "run", "ps", "-o", "pid,comm" }
    assert.are.equal(0, ps.code, ps.err)
    assert.are.same({ "PID COMMAND 1 ps" }, { (ps.out:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")) })
  end)

  it("gives the container its own hostname and leaves the host's alone", function()
    local host = helper.read_file("/proc/sys/kernel/hostname")
    local r = helper.lbox_run { "run", "--hostname", "inner-box", "hostname" }
    assert.are.same({ 0, "inner-box\n" }, { r.code, r.out })
    assert.are.equal(host, helper.read_file("/proc/sys/kernel/hostname"))
    local default = helper.lbox_run { "run", "hostname" }
    assert.matches("^%x+\n$", default.out)
    assert.are.equal(13, #default.out)
  end)

  it("isolates mounts, IPC and the network", function()
    local host_ipc = helper.sh("ipcmk -Q >/dev/null && ipcs -q | grep -c '^0x'")
    local r = helper.lbox_run { "run", "sh", "-c",
      "tail -n +2 /proc/sysvipc/msg | wc -l; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; " ..
      "for ns in mnt ipc net uts pid; do readlink /proc/1/ns/$ns; done; ping -c 1 -W 2 127.0.0.1 >/dev/null" }
    helper.sh("for id in $(ipcs -q | awk '/^0x/ {print $2}'); do ipcrm -q $id; done")
    assert.are.equal(0, r.code, r.err)
    assert.is_true(tonumber(host_ipc.out) >= 1)
    local lines = {}
    for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("0", lines[1], "the host's message queue is visible")
    assert.are.equal("lo", lines[2], "a network device of the host is visible") -- and lo is up: ping worked
    assert.are.equal(7, #lines, r.out)
    for i, ns in ipairs { "mnt", "ipc", "net", "uts", "pid" } do
      local host_ns = lfs.symlinkattributes("/proc/self/ns/" .. ns, "target")
      assert.are_not.equal(host_ns, lines[i + 2], ns .. " namespace is the host's")
    end
  end)

  it("shares the host's network, or a running container's, with --network", function()
    local devices = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"
    local host = helper.sh(devices)
    local r = helper.lbox_run { "run", "--network", "host", "sh", "-c", devices .. "; readlink /proc/self/ns/net" }
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(host.out .. lfs.symlinkattributes("/proc/self/ns/net", "target") .. "\n", r.out)
    local id = helper.lbox_run({ "run", "-d", "--name", "lbox-spec-net", "sleep", "30" }).out:match("^(%x+)\n$")
    local shared = helper.lbox_run { "run", "--network", "container:lbox-spec-net", "readlink", "/proc/self/ns/net" }
    local own = helper.lbox_run { "exec", id, "readlink", "/proc/self/ns/net" }
    assert.are.same({ 0, own.out }, { shared.code, shared.out }, shared.err)
    assert.are_not.equal(lfs.symlinkattributes("/proc/self/ns/net", "target") .. "\n", own.out)
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", id }).code)
    for mode, message in pairs { bogus = "%-%-network: no such network bogus %(see lbox network ls%)",
                                 ["container:lbox-spec-none"] = "no such container: lbox%-spec%-none" } do
      r = helper.lbox_run { "run", "--network", mode, "true" }
      assert.are.equal(125, r.code, mode)
      assert.matches("^lbox: error: " .. message .. "\n$", r.err)
    end
  end)

  it("mounts a fresh /proc with nosuid, nodev and noexec", function()
    local r = run { PROBE }
    local options = facts(r.out).proc_mount
    for _, flag in ipairs { "nosuid", "nodev", "noexec" } do
      assert.matches(flag, options)
    end
  end)

  it("keeps the host's /proc and mounts intact when / is shared", function()
    -- A private mount namespace of the test's own, made shared like a
    -- systemd host: without lbox's private step, /proc would leak into it.
    local script = [[
      mount --make-rshared / || exit 90
      grep -q 'shared:' /proc/self/mountinfo || exit 91
      before=$(cat /proc/self/mountinfo)
      "$0" run.lua true || exit 92
      "$0" run.lua sh -c 'exit 3'; [ $? = 3 ] || exit 93
      "$0" run.lua /nonexistent; [ $? = 127 ] || exit 94
      "$0" run.lua sh -c 'kill -9 $$'
      after=$(cat /proc/self/mountinfo)
      [ "$before" = "$after" ] || { echo "$before"; echo ---; echo "$after"; exit 95; }
      ls /proc/self/exe >/dev/null || exit 96
      # the check is sharp: a mount in a child namespace does reach us
      unshare -m --propagation unchanged mount -t tmpfs lbox-probe /mnt
      grep -q lbox-probe /proc/self/mountinfo || exit 97
      umount /mnt
    ]]
    local r = helper.exec { "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, helper.lbox }
    assert.are.equal(0, r.code, r.out .. r.err)
  end)

  it("gives the container a cgroup namespace on v2, the host's on v1, as docker", function()
    local r = helper.lbox_run { "run", "-m", "64m", "sh", "-c",
      "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max 2>/dev/null; "
      .. "(echo 1 > /sys/fs/cgroup/memory.max) && echo wrote; true" }
    assert.are.equal(0, r.code, r.err)
    if helper.read_file("/sys/fs/cgroup/cgroup.controllers") then
      assert.matches("^0::/\n", r.out)
      -- its own cgroup, read-only, at /sys/fs/cgroup
      assert.matches("\n67108864\n", r.out)
      assert.matches("Read%-only file system", r.err)
      assert.is_nil(r.out:find("wrote"))
    else
      local parent = require("lbox.cgroups").parent:gsub("%p", "%%%0")
      assert.matches("memory:/" .. parent .. "/" .. string.rep("%x", 64) .. "\n", r.out)
    end
  end)

  it("passes 1 MiB of arguments and any bytes intact", function()
    local args = {}
    for i = 1, 16 do args[i] = string.rep(string.char(65 + i), 64 * 1024) end
    for _, odd in ipairs { "", " ", "a b", "'", '"', "$HOME", "\n", "line1\nline2", "\255\254\1", "\t*?", "-it" } do
      args[#args + 1] = odd
    end
    local argv = { "run", "/bin/sh", "-c", 'printf "%s\\0" "$@"', "sh", table.unpack(args) }
    local r = helper.lbox_run(argv)
    assert.are.equal(0, r.code, r.err)
    local got = {}
    for item in r.out:gmatch("([^%z]*)%z") do got[#got + 1] = item end
    assert.are.equal(#args, #got)
    for i = 1, #args do
      assert.is_true(args[i] == got[i], "argument " .. i .. " changed")
    end
  end)

  it("looks the command up in PATH like a shell and gives docker's exit codes", function()
    local hi = helper.lbox_run { "run", "echo", "hi" }
    assert.are.same({ 0, "hi\n" }, { hi.code, hi.out })
    local cases = {
      { { "busybox", "no-such-command" }, 127, 'exec "no%-such%-command": executable file not found in %$PATH' },
      -- neither an image nor a command: a docker user meant an image, which lbox does not pull
      -- (without a volume, which could bring the command)
      { { "no-such-command" }, 125, "no image no%-such%-command in the store, and no command no%-such%-command in "
        .. "the busybox image: lbox pull no%-such%-command first %(lbox run does not pull%)", plain = true },
      { { "alpine:3" }, 125, "no image alpine:3 in the store, and no command alpine:3 in the busybox image: "
        .. "lbox pull alpine:3 first %(lbox run does not pull%)", plain = true },
      { { "/no/such/file" }, 127, 'exec "/no/such/file": no such file or directory' },
      { { "/fixtures/not-executable.txt" }, 126, 'exec "/fixtures/not%-executable.txt": permission denied' },
      { { "/etc" }, 126, 'exec "/etc": permission denied' },
      { { "sh", "-c", "exit 42" }, 42 },
      { { "sh", "-c", "exit 255" }, 255 },
    }
    for _, case in ipairs(cases) do
      local r = case.plain and helper.lbox_run { "run", table.unpack(case[1]) } or run(case[1])
      assert.are.equal(case[2], r.code, table.concat(case[1], " ") .. ": " .. r.err)
      if case[3] then
        assert.matches("^lbox: error: " .. case[3] .. "\n$", r.err)
      end
    end
  end)

  it("runs a script without #! through /bin/sh, as execvp does", function()
    local r = run { "/fixtures/no-shebang.sh", "arg" }
    assert.are.same({ 0, "no shebang: arg\n" }, { r.code, r.out })
  end)

  it("gives the container a clean environment", function()
    local r = helper.lbox_run({ "run", "-e", "A=1", "-e", "B=x=y", "env" }, { env = helper.env("PATH=/bin", "SECRET=host") })
    assert.are.equal(0, r.code, r.err)
    assert.matches("\nA=1\n", "\n" .. r.out)
    assert.matches("\nB=x=y\n", "\n" .. r.out)
    assert.matches("\nPATH=/usr/local/sbin:", "\n" .. r.out)
    assert.matches("\nHOSTNAME=%x+\n", "\n" .. r.out)
    assert.is_nil(r.out:find("SECRET"))
    -- nor the descriptors it had open
    local fds = helper.sh(helper.lbox .. " run sh -c 'ls /proc/1/fd; true' 3</etc/hostname 7>/dev/null")
    assert.are.same({ 0, "0\n1\n2\n" }, { fds.code, fds.out })
    -- nor the signals it ignored or blocked (but 32 and 33, the C library's)
    local signals = helper.sh("trap '' ALRM USR1 RTMIN+5; exec " .. helper.lbox
      .. " run grep -E 'Sig(Ign|Blk)' /proc/self/status")
    assert.are.equal(0, signals.code, signals.err)
    local blocked, ignored = signals.out:match("^SigBlk:\t(%x+)\nSigIgn:\t(%x+)\n$")
    assert.are.same({ 0, 0 }, { tonumber(blocked, 16), tonumber(ignored, 16) & ~0x180000000 }, signals.out)
    -- nor the umask of the shell lbox runs from
    local umask = helper.sh("umask 077; " .. helper.lbox .. " run sh -c umask")
    assert.are.same({ 0, "0022\n" }, { umask.code, umask.out })
  end)

  it("runs as a user by name or number, as the container's /etc files know it", function()
    local function as(user, volume)
      local args = { "run", "-u", user, "sh", "-c", "id -u; id -g; id -G; echo $HOME" }
      if volume then table.insert(args, 2, "-v") table.insert(args, 3, volume) end
      local r = helper.lbox_run(args)
      return { r.code, r.code == 0 and r.out or r.err }
    end
    assert.are.same({ 0, "65534\n65534\n65534\n/\n" }, as("nobody"))
    assert.are.same({ 0, "65534\n0\n0\n/\n" }, as("nobody:root"))
    assert.are.same({ 0, "4242\n65534\n65534\n/\n" }, as("4242:nogroup"))
    assert.are.same({ 0, "0\n0\n0\n/root\n" }, as("0"))
    -- without -u, root with the container's groups, not those lbox runs with
    local groups = helper.sh("setpriv --groups 4,24 " .. helper.lbox .. " run id -G")
    assert.are.same({ 0, "0\n" }, { groups.code, groups.out })
    -- supplementary groups: those that list the user in the container's /etc/group
    local group_file = os.tmpname()
    helper.write_file(group_file, "root:x:0:\nnogroup:x:65534:\ndisk:x:6:nobody\n")
    local r = as("nobody", group_file .. ":/etc/group:ro")
    os.remove(group_file)
    assert.are.same({ 0, "65534\n65534\n65534 6\n/\n" }, r)
    for user, message in pairs { ghost = "unable to find user ghost: no matching entries in /etc/passwd",
                                 ["nobody:ghosts"] = "unable to find group ghosts: no matching entries in /etc/group",
                                 ["a b"] = '--user: "a b": use USER[:GROUP], names or numbers' } do
      assert.are.same({ 125, "lbox: error: " .. message .. "\n" }, as(user))
    end
  end)

  it("keeps the user's terminal out of reach without -t", function()
    -- lbox has a controlling terminal here; its container gets a session without one
    local term = helper.start_pty { helper.lbox, "run", "sh", "-c",
      "echo in > /dev/tty || echo no-tty-$((6*7)); cut -d' ' -f6,7 /proc/self/stat" }
    assert.are.equal(0, helper.finish_pty(term))
    assert.matches("no%-tty%-42", term.output)
    assert.matches("\n1 0\r?\n", term.output) -- session 1, no terminal
  end)

  it("passes output through unbuffered, so pipes work", function()
    local r = helper.sh(helper.lbox .. " run.lua echo hi | wc -c")
    assert.are.equal("3\n", r.out)
    local order = helper.lbox_run { "run", "sh", "-c", "echo out; echo err >&2; echo out2" }
    assert.are.same({ "out\nout2\n", "err\n" }, { order.out, order.err })
  end)

  it("detaches stdin unless -i is given", function()
    local without = helper.lbox_run({ "run", "cat" }, { stdin = "fed\n" })
    assert.are.same({ 0, "" }, { without.code, without.out })
    local with = helper.lbox_run({ "run", "-i", "cat" }, { stdin = "fed\n" })
    assert.are.same({ 0, "fed\n" }, { with.code, with.out })
  end)

  it("forwards signals to PID 1 and exits with its status", function()
    local signals = { "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2" }
    for i, name in ipairs(signals) do
      local trap = name:sub(4)
      local proc = helper.start { helper.lbox, "run", "sh", "-c",
        "trap 'exit " .. (10 + i) .. "' " .. trap .. "; echo ready; while :; do sleep 0.05; done" }
      -- wait for the trap to be set before signalling
      helper.read_until(proc.out_fd, "ready")
      core.kill(proc.pid, core[name])
      local r = helper.finish(proc, 10)
      assert.are.equal(10 + i, r.code, name .. ": " .. r.err)
    end
  end)

  it("exits 128+N when the container is killed by signal N", function()
    local proc = helper.start { helper.lbox, "run", "sh", "-c", "echo ready; exec sleep 30" }
    helper.read_until(proc.out_fd, "ready")
    -- lbox clones the container's PID 1 as its child
    local pid1 = helper.read_file("/proc/" .. proc.pid .. "/task/" .. proc.pid .. "/children"):match("%d+")
    core.kill(tonumber(pid1), core.SIGKILL)
    assert.are.equal(137, helper.finish(proc, 10).code)
  end)

  it("dies with lbox when lbox is killed", function()
    local proc = helper.start { helper.lbox, "run", "sh", "-c", "echo ready; exec sleep 30" }
    helper.read_until(proc.out_fd, "ready")
    core.kill(proc.pid, core.SIGKILL)
    assert.are.equal(137, helper.finish(proc, 10).code)
    -- the leak check asserts the container went with it; its directory
    -- stays until the next run sweeps it
    assert.are.equal(1, #helper.snapshot().containers)
    assert.are.equal(0, helper.lbox_run({ "run", "true" }).code)
  end)

  describe("with -t", function()
    it("gives the shell a controlling terminal with job control", function()
      local term = helper.start_pty({ helper.lbox, "run", "-it", "/bin/sh" }, 33, 91)
      assert.is_true(helper.expect(term, "# "), term.output)
      core.write(term.master, "tty; stty size; sleep 0.2 & jobs; echo done-$((6*7))\n")
      assert.is_true(helper.expect(term, "done%-42"), term.output)
      assert.matches("/dev/console", term.output)
      assert.matches("33 91", term.output)
      assert.matches("%[1%]", term.output)
      assert.is_nil(term.output:find("can't access tty"))
      assert.is_nil(term.output:find("job control turned off"))
      core.write(term.master, "exit 7\n")
      assert.are.equal(7, helper.finish_pty(term))
    end)

    it("delivers Ctrl-C to the container, not to lbox", function()
      local term = helper.start_pty { helper.lbox, "run", "-it", "/bin/sh" }
      assert.is_true(helper.expect(term, "# "))
      -- the arithmetic shows in the output, not in the echo of the input:
      -- "ar0med" once the sleep is the terminal's foreground job,
      -- "caught-42" from the trap, "after-1" when the interrupted sleep ended
      core.write(term.master,
        "trap 'echo caught-$((6*7))' INT; sh -c 'echo ar$((0))med; exec sleep 5'; echo after-$((1))\n")
      assert.is_true(helper.expect(term, "ar0med"), term.output)
      core.write(term.master, "\3")
      assert.is_true(helper.expect(term, "after%-1", 4), term.output)
      assert.matches("caught%-42", term.output)
      core.write(term.master, "exit 0\n")
      assert.are.equal(0, helper.finish_pty(term))
    end)

    it("follows the window size on SIGWINCH", function()
      local term = helper.start_pty({ helper.lbox, "run", "-it", "/bin/sh" }, 24, 80)
      assert.is_true(helper.expect(term, "# "))
      core.set_winsize(term.master, 50, 120)
      core.kill(term.pid, core.SIGWINCH)
      -- lbox may read the typed line before the signal: ask until it shows
      local resized = false
      for _ = 1, 20 do
        core.write(term.master, "stty size\n")
        resized = helper.expect(term, "50 120", 0.5)
        if resized then break end
      end
      assert.is_true(resized, term.output)
      core.write(term.master, "exit\n")
      assert.are.equal(0, helper.finish_pty(term))
    end)

    it("restores the user's terminal on every exit path", function()
      -- one pty: after each lbox, the terminal must be back in canonical mode
      local lbox = helper.lbox .. " run.lua -it "
      local check = "; echo rc=$?; stty -a | grep -o -- '-*icanon'; "
      local term = helper.start_pty { "/bin/sh", "-c",
        lbox .. "sh -c 'exit 5'" .. check ..
        lbox .. "/nonexistent" .. check ..
        "timeout --preserve-status --foreground -s TERM 8 " .. lbox .. "sh -c 'trap \"exit 9\" TERM; sleep 30 & wait'" .. check }
      -- time enough for three starts in the emulated v2 guest, the trap set before the TERM
      assert.are.equal(0, helper.finish_pty(term, 60))
      local out = term.output:gsub("\r", "")
      assert.matches("rc=5\nicanon\n", out)
      assert.matches("rc=127\nicanon\n", out)
      assert.matches("rc=9\nicanon\n", out)
      assert.is_nil(out:find("-icanon", 1, true))
    end)
  end)
end)

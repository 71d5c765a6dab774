-- lbox bench [RUNS]: start-up time of `lbox run /bin/true` next to what
-- people would use instead, measured in one run with the commands
-- alternating (round after round, each command once per round, the order
-- turning), so that a shared machine's load, which drifts by the minute,
-- falls on all of them alike; medians, and ratios lbox/other. lbox, runc and
-- crun start the same busybox root (lbox's built-in image).
--   (a) no limits: lbox on the image (overlay) and on the root as it is,
--       against crun, runc, bwrap --unshare-all and unshare + chroot;
--   (b) a 100m memory limit: lbox, crun, runc and a shell script doing
--       the same namespaces and the same cgroup work;
--   (c) peak memory (RSS) of lbox's processes and of bwrap's;
--   (d) what confinement and networks add to lbox's own start;
--   (e) the store growing: start, ps, exec and rm with 0, 50 and 500
--       containers kept in the store;
--   (f) parallel starts: 100 containers 8 at a time and one at a time,
--       containers per second, lbox and crun.
-- lbox oci run (lbox as an OCI runtime) runs the same bundles as runc and crun.
-- crun refuses cgroup v1 hybrid hosts (it takes the v2 mount at
-- /sys/fs/cgroup/unified for the whole of it): there it runs, and lbox with
-- it in the same comparison, in a mount namespace of their own where an
-- empty tmpfs replaces that mount. A runtime that is not
-- installed, or refuses this host, is reported and left out. Everything
-- made is removed, and checked to be: containers, cgroups, mounts.
local cgroups = require "lbox.cgroups"
local cjson = require "cjson"
local images = require "lbox.images"
local cli = require "lbox.cli"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local options = require "lbox.options"

local opts, args = options.command({
  name = "bench", synopsis = { "[RUNS]" }, summary = "measure lbox run's start-up time and memory against others",
  description = "Start-up time (RUNS alternating rounds, 50 by default), peak memory, the store's growth and "
    .. "parallel starts of lbox run next to crun, runc, bwrap and unshare; a runtime that is not installed is "
    .. "left out.",
  operands = { 0, 1 },
}, { ... })
if not opts then return 0 end
local runs = tonumber(args[1]) or 50
local WARMUP = 5
local MEMORY_RUNS = 11
-- LBOX_BENCH_QUICK: small numbers, to try the benchmark itself out
local quick = os.getenv("LBOX_BENCH_QUICK")
local GROWTH = quick and { 0, 5, 10 } or { 0, 50, 500 }
local GROWTH_ROUNDS = quick and 3 or 11
local PARALLEL = { count = quick and 16 or 100, width = 8, rounds = quick and 1 or 3 }
local MEMORY = 100 * 1024 * 1024
local work = "/tmp/lbox-bench." .. core.getpid()
-- LBOX_BENCH_LBOX: another lbox binary to measure; LBOX_BENCH_BEFORE: an
-- older build measured in the same rounds, for a before/after
local lbox = os.getenv("LBOX_BENCH_LBOX") or cli.root .. "/lbox"
local before_lbox = os.getenv("LBOX_BENCH_BEFORE")
-- a cgroup parent of the benchmark's own: its sweeps touch nothing else's
local CGROUP_PARENT = "lbox-bench"

local function sh(command)
  local ok = os.execute(command)
  if not ok then errors.raise("bench: failed: " .. command) end
end

local function output(command)
  local p = assert(io.popen(command))
  local text = p:read("a")
  p:close()
  return text
end

-- The full path of `program` | nil
local function which(program)
  local path = output("command -v " .. program .. " 2>/dev/null"):match("[^\n]+")
  return path ~= "" and path or nil
end

local function write(path, text, mode)
  fs.write_file(path, text)
  if mode then sh("chmod " .. mode .. " " .. path) end
end

local function environment(store)
  local env = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C",
                "LBOX_CGROUP_PARENT=" .. CGROUP_PARENT }
  if store or os.getenv("LBOX_STORE") then env[#env + 1] = "LBOX_STORE=" .. (store or os.getenv("LBOX_STORE")) end
  return env
end
local ENV = environment()

-- Run argv (argv[1] a full path) to its end, its output discarded, no
-- shell in between. @return seconds it took, exit code
local function timed(argv, env)
  local started = core.monotonic()
  local pid = assert(core.clone(0))
  if pid == 0 then
    local null = core.open("/dev/null", "rw")
    for fd = 0, 2 do core.dup2(null, fd) end
    core.execve(argv[1], argv, env or ENV)
    core._exit(127)
  end
  local _, how, code = core.waitpid(pid)
  return core.monotonic() - started, how == "exited" and code or 128 + code
end

-- Does argv work here? crun refuses hybrid cgroup hosts, for one.
local function works(argv)
  local _, code = timed(argv)
  return code == 0
end

local function median(list)
  local sorted = table.move(list, 1, #list, 1, {})
  table.sort(sorted)
  local n = #sorted
  return n % 2 == 1 and sorted[(n + 1) // 2] or (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- Time each of `commands` ({ label, argv }) `rounds` times, alternating,
-- after WARMUP rounds. @return label -> median seconds
local function alternate(commands, rounds)
  local samples = {}
  for _, c in ipairs(commands) do samples[c[1]] = {} end
  for round = 1 - WARMUP, rounds do
    for i = 1, #commands do
      local c = commands[(round + i) % #commands + 1]
      local seconds, code = timed(c[2], c.env)
      if code ~= 0 then errors.raise(string.format("bench: %s failed (exit %d): %s", c[1], code,
        table.concat(c[2], " "))) end
      if round > 0 then table.insert(samples[c[1]], seconds) end
    end
  end
  local medians = {}
  for label, list in pairs(samples) do medians[label] = median(list) end
  return medians
end

local function ms(seconds) return string.format("%7.2f ms", seconds * 1000) end

-- Lines "lbox job  time | other  time | ratio" for `pairs` ({ lbox label, other label }).
local function compare(title, medians, comparisons)
  print(title)
  for _, pair in ipairs(comparisons) do
    local a, b = medians[pair[1]], medians[pair[2]]
    if a and b then
      print(string.format("  %-46s %s | %-36s %s | %5.2f", pair[1], ms(a), pair[2], ms(b), a / b))
    end
  end
end

-- Peak resident memory of argv in KiB, the median of MEMORY_RUNS runs:
-- what wait4 reports for it, the largest of the process and of the
-- descendants it reaped (GNU time's %M).
local function peak_memory(argv)
  local out = work .. "/rss"
  local samples = {}
  for i = 1, MEMORY_RUNS do
    local _, code = timed({ "/usr/bin/time", "-f", "%M", "-o", out, table.unpack(argv) })
    if code ~= 0 then errors.raise("bench: failed: " .. table.concat(argv, " ")) end
    samples[i] = tonumber(fs.read_file(out):match("%d+"))
  end
  return median(samples)
end

-- An OCI bundle on the busybox root running argv (default /bin/true), with
-- an optional memory limit; `runc spec` gives the defaults.
local function oci_bundle(name, rootfs, memory)
  local dir = work .. "/" .. name
  sh("mkdir -p " .. dir .. " && cd " .. dir .. " && runc spec")
  local config = cjson.decode(fs.read_file(dir .. "/config.json"))
  config.root = { path = rootfs, readonly = true }
  config.process.terminal = false
  config.process.args = { "/bin/true" }
  if memory then config.linux.resources.memory = { limit = memory, swap = 2 * memory } end
  write(dir .. "/config.json", cjson.encode(config))
  return dir
end

-- What the host has now that a benchmark could leave behind: the mount
-- table, the groups under each cgroup hierarchy's root and lbox's bench
-- parent, lbox's containers.
local function leftovers()
  local seen = {}
  for line in output("cat /proc/self/mountinfo; "
    .. "find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | grep -v '/sys/fs/cgroup/[^/]*/system.slice'")
    :gmatch("[^\n]+") do
    seen[#seen + 1] = line
  end
  table.sort(seen)
  return seen
end

local function check_left(before)
  local now = leftovers()
  local was = {}
  for _, line in ipairs(before) do was[line] = true end
  local extra = {}
  for _, line in ipairs(now) do
    -- lbox's parent group stays, as the default one does
    if not was[line] and not line:find("^/sys/fs/cgroup/[^/]+/" .. CGROUP_PARENT:gsub("%p", "%%%0") .. "$") then
      extra[#extra + 1] = line
    end
  end
  -- others' containers come and go on a shared machine: only what names
  -- the benchmark is its own
  local own = {}
  for _, line in ipairs(extra) do
    if line:find("bench") then own[#own + 1] = line end
  end
  if #own > 0 then
    print("LEFT BEHIND:\n  " .. table.concat(own, "\n  "))
  else
    print("nothing left behind: no mount, cgroup or container of the benchmark remains")
  end
  return #own == 0
end

if core.geteuid() ~= 0 then errors.raise("bench: needs root") end
for _, program in ipairs { "unshare", "chroot", "xargs" } do
  if not which(program) then errors.raise("bench: " .. program .. " is missing") end
end
if not fs.exists("/usr/bin/time") then errors.raise("bench: /usr/bin/time is missing: make deps-bench") end

local before = leftovers()
sh("mkdir -p " .. work)
local ok, err = pcall(function()
  local rootfs = images.get(images.DEFAULT).rootfs
  local hybrid = fs.exists("/sys/fs/cgroup/unified/cgroup.controllers")
  -- both sides of a comparison with crun run under it, on a hybrid host
  local wrap = {}
  if hybrid then
    local path = work .. "/cgroup-v1-only"
    -- unmounted first, or libcgroup would still find v2 there; the tmpfs
    -- keeps what crun makes for v2 out of the host's /sys/fs/cgroup
    write(path, "#!/bin/sh\n# a mount namespace where /sys/fs/cgroup/unified is an empty tmpfs: crun takes the host as v1\n"
      .. "exec " .. which("unshare") .. " -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && "
      .. "mount -t tmpfs lbox-bench /sys/fs/cgroup/unified && exec \"$@\"' sh \"$@\"\n", "755")
    wrap = { path }
  end
  local function wrapped(argv) return table.move(argv, 1, #argv, #wrap + 1, table.move(wrap, 1, #wrap, 1, {})) end

  local runtimes = {}
  local bundle = which("runc") and oci_bundle("plain", rootfs)
  local limited_bundle = bundle and oci_bundle("limited", rootfs, MEMORY)
  for _, name in ipairs { "runc", "crun" } do
    local path = bundle and which(name)
    local argv = path and (name == "crun" and wrapped { path } or { path })
    if argv then
      table.move({ "run", "-b", bundle, "bench-probe" }, 1, 4, #argv + 1, argv)
    end
    if argv and works(argv) then
      runtimes[#runtimes + 1] = name
      runtimes[name] = path
    else
      print(string.format("(%s left out: %s)", name, not bundle and "runc is needed to write the OCI config"
        or not path and "not installed" or "it refuses to run on this host"))
    end
  end
  local function runtime_argv(name, dir, id)
    local argv = { runtimes[name], "run", "-b", dir, id or "bench-run" }
    return name == "crun" and wrapped(argv) or argv
  end

  local LBOX_ROOTFS = "lbox run --rootfs DIR"
  local LBOX_IMAGE = "lbox run (image, overlay)"
  local LBOX_LIMITED = "lbox run --rootfs DIR -m 100m"
  local run_rootfs = { lbox, "run", "--rootfs", rootfs, "/bin/true" }
  local run_image = { lbox, "run", "/bin/true" }
  local run_limited = { lbox, "run", "--rootfs", rootfs, "-m", "100m", "/bin/true" }
  local unshare = which("unshare")
  local bwrap_argv = which("bwrap") and { which("bwrap"), "--unshare-all", "--ro-bind", rootfs, "/",
    "--proc", "/proc", "--dev", "/dev", "/bin/true" }
  local commands = {
    { LBOX_ROOTFS, run_rootfs },
    { LBOX_IMAGE, run_image },
    { LBOX_LIMITED, run_limited },
    { "unshare (5 namespaces) + chroot", { unshare, "-u", "-p", "-m", "-i", "-n", "-f",
      "--mount-proc=" .. rootfs .. "/proc", which("chroot"), rootfs, "/bin/true" } },
  }
  if bwrap_argv then commands[#commands + 1] = { "bwrap --unshare-all", bwrap_argv } end
  -- lbox as an OCI runtime, on the very bundles runc and crun run
  local LBOX_OCI, LBOX_OCI_LIMITED = "lbox oci run", "lbox oci run -m 100m"
  local function oci_run(dir) return { lbox, "oci", "--root", work .. "/oci-root", "run", "-b", dir, "bench-oci" } end
  local oci_jobs = bundle and { { LBOX_OCI, oci_run(bundle) }, { LBOX_OCI_LIMITED, oci_run(limited_bundle) } } or {}
  for _, job in ipairs(oci_jobs) do commands[#commands + 1] = job end
  local comparisons_a, comparisons_b = {}, {}
  for _, name in ipairs(runtimes) do
    local suffix = name == "crun" and hybrid and " (both wrapped)" or ""
    local plain, limited = name .. " run" .. suffix, name .. " run -m 100m" .. suffix
    commands[#commands + 1] = { plain, runtime_argv(name, bundle) }
    commands[#commands + 1] = { limited, runtime_argv(name, limited_bundle) }
    if name == "crun" and hybrid then
      -- lbox under the same wrapper, for a fair ratio
      for _, c in ipairs { { LBOX_ROOTFS, run_rootfs }, { LBOX_IMAGE, run_image }, { LBOX_LIMITED, run_limited },
                           table.unpack(oci_jobs) } do
        commands[#commands + 1] = { c[1] .. suffix, wrapped(c[2]) }
      end
    end
    for _, job in ipairs { LBOX_IMAGE, LBOX_ROOTFS, LBOX_OCI } do
      comparisons_a[#comparisons_a + 1] = { job .. suffix, plain }
    end
    comparisons_b[#comparisons_b + 1] = { LBOX_LIMITED .. suffix, limited }
    comparisons_b[#comparisons_b + 1] = { LBOX_OCI_LIMITED .. suffix, limited }
  end
  -- (b)'s floor: the same namespaces and the same cgroup work, in shell
  local mount, version = cgroups.hierarchy("memory")
  timed(run_limited) -- lbox prepares its parent (on v2: the memory controller delegated)
  local writes = version == 1
    and string.format('echo %d > "$g/memory.limit_in_bytes"\necho %d > "$g/memory.memsw.limit_in_bytes"', MEMORY, 2 * MEMORY)
    or string.format('echo %d > "$g/memory.max"\necho %d > "$g/memory.swap.max"', MEMORY, MEMORY)
  local script = work .. "/limit.sh"
  write(script, table.concat({
    "#!/bin/sh", "set -e",
    'g=' .. mount .. "/" .. CGROUP_PARENT .. '/bench-$$',
    'mkdir "$g"', writes,
    'sh -c "echo \\$\\$ > $g/cgroup.procs && exec ' .. unshare .. ' -u -p -m -i -n -f --mount-proc='
      .. rootfs .. '/proc chroot ' .. rootfs .. ' /bin/true"',
    'rmdir "$g"',
  }, "\n") .. "\n", "755")
  commands[#commands + 1] = { "shell script (same cgroup work)", { script } }
  if before_lbox then
    -- the same jobs with the older build, in the same rounds
    for _, c in ipairs { { LBOX_ROOTFS, run_rootfs }, { LBOX_IMAGE, run_image }, { LBOX_LIMITED, run_limited } } do
      local argv = table.move(c[2], 1, #c[2], 1, {})
      argv[1] = before_lbox
      commands[#commands + 1] = { c[1] .. " (before)", argv }
      table.insert(c[1] == LBOX_LIMITED and comparisons_b or comparisons_a, { c[1], c[1] .. " (before)" })
    end
  end
  table.insert(comparisons_a, { LBOX_ROOTFS, "bwrap --unshare-all" })
  table.insert(comparisons_a, { LBOX_ROOTFS, "unshare (5 namespaces) + chroot" })
  table.insert(comparisons_b, { LBOX_LIMITED, "shell script (same cgroup work)" })

  print(string.format("medians of %d alternating rounds after %d warm-up rounds; ratio = lbox / other "
    .. "(below 1: lbox is faster)", runs, WARMUP))
  local medians = alternate(commands, runs)
  compare("(a) no limits: /bin/true on busybox's root", medians, comparisons_a)
  compare("(b) a 100m memory limit", medians, comparisons_b)

  print(string.format("(c) peak memory (RSS), median of %d runs: the largest of the process and the "
    .. "descendants it reaped", MEMORY_RUNS))
  local reference
  for _, c in ipairs { { LBOX_ROOTFS, run_rootfs }, { LBOX_IMAGE, run_image }, { LBOX_LIMITED, run_limited },
                       bwrap_argv and { "bwrap --unshare-all", bwrap_argv } or nil } do
    local kib = peak_memory(c[2])
    reference = reference or kib
    print(string.format("  %-38s %6.1f MiB  %5.2fx", c[1], kib / 1024, kib / reference))
  end

  -- the default network exists from here on, as docker0 once docker ran
  timed { lbox, "run", "--network", "bridge", "/bin/true" }
  local extra = alternate({
    { "lbox run (loopback only)", run_rootfs },
    { "seccomp=unconfined", { lbox, "run", "--rootfs", rootfs, "--security-opt", "seccomp=unconfined", "/bin/true" } },
    { "--cap-add MKNOD (device rules)", { lbox, "run", "--rootfs", rootfs, "--cap-add", "MKNOD", "/bin/true" } },
    { "--network bridge", { lbox, "run", "--rootfs", rootfs, "--network", "bridge", "/bin/true" } },
    { "-p 18399:80 (bridge)", { lbox, "run", "--rootfs", rootfs, "-p", "18399:80", "/bin/true" } },
  }, math.max(10, runs // 4))
  print("(d) what confinement and networks add: ratio to lbox run --rootfs DIR")
  for _, label in ipairs { "lbox run (loopback only)", "seccomp=unconfined", "--cap-add MKNOD (device rules)",
                           "--network bridge", "-p 18399:80 (bridge)" } do
    print(string.format("  %-38s %s  %5.2fx", label, ms(extra[label]), extra[label] / extra["lbox run (loopback only)"]))
  end

  -- (e) a store of its own, filled with kept containers
  local store = work .. "/store"
  local env = environment(store)
  local function in_store(...) return { lbox, ... } end
  local function fill(count)
    -- kept: detached, ended, not removed
    if count <= 0 then return end
    local _, code = timed({ "/bin/sh", "-c", string.format("seq %d | xargs -P 4 -I{} %s run -d --rootfs %s /bin/true",
      count, lbox, rootfs) }, env)
    if code ~= 0 then errors.raise("bench: cannot fill the store") end
  end
  local function detached(...)
    local p = assert(io.popen("env LBOX_STORE=" .. store .. " LBOX_CGROUP_PARENT=" .. CGROUP_PARENT .. " "
      .. table.concat({ lbox, "run", "-d", "--rootfs", rootfs, ... }, " ")))
    local id = p:read("l")
    p:close()
    return id
  end
  local runner = detached("sleep", "100000")
  local GROWTH_OPS = { "start", "ps", "exec", "rm" }
  if before_lbox then
    for _, op in ipairs { "start (before)", "ps (before)", "exec (before)" } do GROWTH_OPS[#GROWTH_OPS + 1] = op end
  end
  local in_store_count = 0
  local growth = {}
  print(string.format("(e) the store growing: medians of %d alternating rounds with N containers kept in the store "
    .. "(and one running, that exec enters)", GROWTH_ROUNDS))
  print(string.format("  %-30s %12s %12s %12s   ratio %d/%d", "N", GROWTH[1], GROWTH[2], GROWTH[3], GROWTH[3], GROWTH[1]))
  for _, n in ipairs(GROWTH) do
    fill(n - in_store_count)
    in_store_count = n
    local samples = {}
    for _, op in ipairs(GROWTH_OPS) do samples[op] = {} end
    for round = 1, GROWTH_ROUNDS do
      local victim = detached("/bin/true")
      for _, op in ipairs(GROWTH_OPS) do
        local argv = op:find("^start") and in_store("run", "--rootfs", rootfs, "/bin/true")
          or op:find("^ps") and in_store("ps", "-a") or op:find("^exec") and in_store("exec", runner:sub(1, 12), "true")
          or in_store("rm", "-f", victim:sub(1, 12))
        if op:find("before") then argv[1] = before_lbox end
        local seconds, code = timed(argv, env)
        if code ~= 0 then errors.raise("bench: failed: " .. table.concat(argv, " ")) end
        if round > 1 then table.insert(samples[op], seconds) end
      end
    end
    for op, list in pairs(samples) do
      growth[op] = growth[op] or {}
      growth[op][n] = median(list)
    end
  end
  for _, op in ipairs(GROWTH_OPS) do
    local row = growth[op]
    print(string.format("  %-30s %s %s %s   %5.2f", "lbox " .. op, ms(row[GROWTH[1]]), ms(row[GROWTH[2]]),
      ms(row[GROWTH[3]]), row[GROWTH[3]] / row[GROWTH[1]]))
  end
  sh(string.format("LBOX_STORE=%s LBOX_CGROUP_PARENT=%s %s ps -aq | LBOX_STORE=%s LBOX_CGROUP_PARENT=%s xargs -r %s rm -f "
    .. ">/dev/null", store, CGROUP_PARENT, lbox, store, CGROUP_PARENT, lbox))

  -- (f) parallel starts
  print(string.format("(f) parallel starts: %d containers, %d at a time and one at a time "
    .. "(median of %d alternating rounds)", PARALLEL.count, PARALLEL.width, PARALLEL.rounds))
  local xargs = which("xargs")
  local starters = { { "lbox run --rootfs DIR", table.concat(wrapped(run_rootfs), " ") } }
  if runtimes.crun then
    starters[1][1] = starters[1][1] .. (hybrid and " (wrapped)" or "")
    starters[2] = { "crun run" .. (hybrid and " (wrapped)" or ""),
                    table.concat(runtime_argv("crun", bundle, "bench-{}"), " ") }
  end
  local parallel = {}
  for _, s in ipairs(starters) do
    for _, width in ipairs { 1, PARALLEL.width } do
      parallel[#parallel + 1] = { s[1] .. "|" .. width, { "/bin/sh", "-c", string.format("seq %d | %s -P %d -I{} %s",
        PARALLEL.count, xargs, width, s[2]) } }
    end
  end
  local saved = WARMUP
  WARMUP = 0
  local times = alternate(parallel, PARALLEL.rounds)
  WARMUP = saved
  for _, s in ipairs(starters) do
    local one, many = times[s[1] .. "|1"], times[s[1] .. "|" .. PARALLEL.width]
    print(string.format("  %-38s one at a time %6.1f/s, %d at a time %6.1f/s (per container: %5.2fx)", s[1],
      PARALLEL.count / one, PARALLEL.width, PARALLEL.count / many, many / one))
  end
end)
sh("rm -rf " .. work)
local clean = check_left(before)
if not ok then error(err, 0) end
return clean and 0 or 1

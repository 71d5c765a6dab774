-- lbox bench [RUNS [CASE]]: start-up time of `lbox run /bin/true`, side by side in
-- one hyperfine run with what people would use instead, and the peak memory
-- of each, as ratios to the reference of each case. lbox, runc and crun all
-- start the same busybox root (lbox's built-in image); lbox with pivot_root
-- into an overlay.
--   (a) no limits: unshare with the same five namespaces on the host's root
--       (reference: namespaces only), bwrap, runc, crun;
--   (b) a 100m memory limit: a shell script doing the same namespaces and the
--       same cgroup work, create, limit, join, remove (reference), runc, crun;
--   (c) what confinement adds: the seccomp filter (against unconfined), and
--       the device rules (against the same run with a cgroup but no rules).
--   (d) networks: what joining lbox's default bridge network adds, and a
--       published port (reference: lbox run with a loopback only). podman and
--       docker are not Debian packages lbox depends on: not compared here.
-- lbox oci run (lbox as an OCI runtime) runs the same bundles as runc and crun.
-- Each line gives the wall time and the CPU time (user + system, the
-- process's and its children's, as hyperfine reads them): on a machine
-- shared with other work, wall times wander with the load, CPU time much
-- less. A runtime that is not installed, or refuses this host, is reported
-- and left out.
local cgroups = require "lbox.cgroups"
local cjson = require "cjson"
local images = require "lbox.images"
local cli = require "lbox.cli"
local core = require "lbox.core"
local errors = require "lbox.errors"

local options = require "lbox.options"

local opts, args = options.command({
  name = "bench", synopsis = { "[RUNS [CASE]]" }, summary = "measure lbox run's start-up time and memory against others",
  description = "Start-up time (wall and CPU) and peak memory of lbox run next to unshare, a shell script, bwrap, "
    .. "runc and crun (RUNS runs each, 300 by default), with hyperfine; a runtime that is not installed is left "
    .. "out. CASE (a, b, c or d) runs that case alone.",
  operands = { 0, 2 },
}, { ... })
if not opts then return 0 end
local runs = tonumber(args[1]) or 300
local only = args[2]
if only and not ({ a = true, b = true, c = true, d = true })[only] then
  errors.raise("bench: case " .. only .. ": use a, b, c or d")
end
local work = "/tmp/lbox-bench." .. core.getpid()
local lbox = cli.root .. "/lbox"
local MEMORY = 100 * 1024 * 1024
local NAMESPACES = "unshare -u -p -m -i -n -f --mount-proc"
local MEMORY_RUNS = 11

local function sh(command)
  local ok = os.execute(command)
  if not ok then errors.raise("bench: failed: " .. command) end
end

local function have(program)
  return os.execute("command -v " .. program .. " >/dev/null 2>&1") == true
end

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then sh("chmod " .. mode .. " " .. path) end
end

-- An OCI bundle on a shared busybox root running /bin/true, with an
-- optional memory limit; `runc spec` gives the defaults.
local function oci_bundle(name, memory)
  local dir = work .. "/" .. name
  sh("mkdir -p " .. dir .. " && cd " .. dir .. " && runc spec")
  local f = assert(io.open(dir .. "/config.json"))
  local config = cjson.decode(f:read("a"))
  f:close()
  config.root = { path = images.get(images.DEFAULT).rootfs, readonly = true }
  config.process.terminal = false
  config.process.args = { "/bin/true" }
  if memory then config.linux.resources.memory = { limit = memory, swap = 2 * memory } end
  write(dir .. "/config.json", cjson.encode(config))
  return dir
end

-- Does `command` work here? crun refuses hybrid cgroup hosts, for one.
local function works(command)
  return os.execute(command .. " >/dev/null 2>&1") == true
end

-- The reference for (b): the cgroup work lbox does for -m, in shell, under
-- lbox's own parent group (nothing outside it is touched).
local function limit_script()
  local mount, version = cgroups.hierarchy("memory")
  local parent = mount .. "/" .. cgroups.parent
  -- let lbox prepare its parent (on v2: the memory controller delegated)
  sh(lbox .. " run.lua -m 100m /bin/true")
  local writes = version == 1
    and string.format('echo %d > "$g/memory.limit_in_bytes"\necho %d > "$g/memory.memsw.limit_in_bytes"', MEMORY, 2 * MEMORY)
    or string.format('echo %d > "$g/memory.max"\necho %d > "$g/memory.swap.max"', MEMORY, MEMORY)
  local path = work .. "/limit.sh"
  write(path, table.concat({
    "#!/bin/sh",
    "set -e",
    'g=' .. parent .. '/bench-$$',
    'mkdir "$g"',
    writes,
    'sh -c "echo \\$\\$ > $g/cgroup.procs && exec ' .. NAMESPACES .. ' /bin/true"',
    'rmdir "$g"',
  }, "\n") .. "\n", "755")
  return path
end

local function hyperfine(commands)
  local json = work .. "/result.json"
  local argv = { "hyperfine", "-N", "--style", "none", "--warmup", "20", "--runs", tostring(runs), "--export-json", json }
  for _, c in ipairs(commands) do argv[#argv + 1] = "'" .. c[2] .. "'" end
  sh(table.concat(argv, " ") .. " >/dev/null 2>&1")
  local f = assert(io.open(json))
  local result = cjson.decode(f:read("a"))
  f:close()
  return result.results
end

-- Peak resident memory of `command` in KiB, the median of MEMORY_RUNS runs:
-- what wait4 reports for it, the largest of the process and of the
-- descendants it reaped (GNU time's %M).
local function peak_memory(command)
  local out = work .. "/rss"
  local samples = {}
  for i = 1, MEMORY_RUNS do
    sh(string.format("/usr/bin/time -f %%M -o %s %s >/dev/null 2>&1", out, command))
    local f = assert(io.open(out))
    samples[i] = tonumber(f:read("l"))
    f:close()
  end
  table.sort(samples)
  return samples[(MEMORY_RUNS + 1) // 2]
end

local function report(title, commands)
  if only and title:sub(2, 2) ~= only then return end
  local results = hyperfine(commands)
  local memory = {}
  for i, c in ipairs(commands) do memory[i] = peak_memory(c[2]) end
  print(string.format("%-36s %17s %7s %16s %12s %7s", title, "time", "", "CPU time", "peak memory", ""))
  local function cpu(r) return r.user + r.system end
  for i, r in ipairs(results) do
    print(string.format("  %-34s %7.2f ms ± %5.2f %6.2fx %7.2f ms %6.2fx %8.1f MiB %6.2fx", commands[i][1],
      r.mean * 1000, r.stddev * 1000, r.mean / results[1].mean, cpu(r) * 1000, cpu(r) / cpu(results[1]),
      memory[i] / 1024, memory[i] / memory[1]))
  end
end

if core.geteuid() ~= 0 then errors.raise("bench: needs root") end
for _, program in ipairs { "hyperfine", "unshare", "/usr/bin/time" } do
  if not have(program) then errors.raise("bench: " .. program .. " is missing: make deps-bench") end
end
sh("mkdir -p " .. work)
local ok, err = pcall(function()
  local plain = {
    { "unshare (5 namespaces)", NAMESPACES .. " /bin/true" },
    { "lbox run (busybox image)", lbox .. " run.lua /bin/true" },
    -- the same root as runc's and crun's, without the overlay
    { "lbox run --rootfs (busybox root)", lbox .. " run.lua --rootfs " .. images.get(images.DEFAULT).rootfs .. " /bin/true" },
  }
  local limited = {
    { "shell script (same cgroup work)", limit_script() },
    { "lbox run -m 100m (busybox image)", lbox .. " run.lua -m 100m /bin/true" },
  }
  if have("bwrap") then
    plain[#plain + 1] = { "bwrap", "bwrap --unshare-uts --unshare-pid --unshare-ipc --unshare-net "
      .. "--ro-bind / / --proc /proc --dev /dev /bin/true" }
  end
  local bundle = have("runc") and oci_bundle("plain")
  local limited_bundle = bundle and oci_bundle("limited", MEMORY)
  if bundle then
    -- lbox as an OCI runtime, on the same bundles as runc and crun
    local oci_run = lbox .. " oci.lua --root " .. work .. "/oci-root run -b "
    plain[#plain + 1] = { "lbox oci run (busybox root)", oci_run .. bundle .. " lbox-bench" }
    limited[#limited + 1] = { "lbox oci run -m 100m (busybox root)", oci_run .. limited_bundle .. " lbox-bench" }
  end
  for _, runtime in ipairs { "runc", "crun" } do
    local run = bundle and have(runtime) and runtime .. " run -b "
    if run and works(run .. bundle .. " lbox-bench-probe") then
      plain[#plain + 1] = { runtime .. " (busybox root)", run .. bundle .. " lbox-bench" }
      limited[#limited + 1] = { runtime .. " -m 100m (busybox root)", run .. limited_bundle .. " lbox-bench" }
    else
      print(string.format("(%s left out: %s)", runtime,
        not bundle and "runc is needed to write the OCI config" or not have(runtime) and "not installed"
        or "it refuses to run on this host"))
    end
  end
  print(string.format("time: %d runs each, after 20 warm-up runs; peak memory: median of %d runs; "
    .. "ratios to the first line of each case", runs, MEMORY_RUNS))
  report("(a) no limits", plain)
  report("(b) memory limit", limited)
  report("(c) confinement", {
    { "lbox run, seccomp=unconfined", lbox .. " run.lua --security-opt seccomp=unconfined /bin/true" },
    { "lbox run (docker's seccomp profile)", lbox .. " run.lua /bin/true" },
    { "lbox run -m 100m", lbox .. " run.lua -m 100m /bin/true" },
    { "lbox run -m 100m --cap-add MKNOD", lbox .. " run.lua -m 100m --cap-add MKNOD /bin/true" },
    { "lbox run --cap-add MKNOD", lbox .. " run.lua --cap-add MKNOD /bin/true" },
  })
  -- the default network exists from here on, as docker0 once docker ran
  sh(lbox .. " run.lua --network bridge /bin/true")
  report("(d) network", {
    { "lbox run (loopback only)", lbox .. " run.lua /bin/true" },
    { "lbox run --network bridge", lbox .. " run.lua --network bridge /bin/true" },
    { "lbox run -p 18399:80 (bridge)", lbox .. " run.lua -p 18399:80 /bin/true" },
  })
end)
sh("rm -rf " .. work)
if not ok then error(err, 0) end
return 0

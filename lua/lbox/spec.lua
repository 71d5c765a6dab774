--- The container spec: what a container is, as plain data, and its checks.
-- Its fields are documented once, in lua/API.md ("The spec"); a spec
-- (spec/api_spec.lua) keeps FIELDS and lbox.limits equal to that list.
local capabilities = require "lbox.capabilities"
local cgroups = require "lbox.cgroups"
local devices = require "lbox.devices"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local fs = require "lbox.fs"
local images = require "lbox.images"
local limits_table = require "lbox.limits"
local lfs = require "lfs"
local network = require "lbox.lazy" "lbox.network"
local seccomp = require "lbox.seccomp"
local store = require "lbox.store"
local units = require "lbox.units"
local users = require "lbox.users"
local userns = require "lbox.userns"
local workload = require "lbox.workload"

local M = {}

--- The fields a spec may have; any other is refused, as a typo would be.
M.FIELDS = {
  "command", "image", "rootfs", "hostname", "env", "workdir", "read_only", "volumes", "tmpfs", "namespaces",
  "join", "network", "tty", "stdin", "stdio", "limits", "id", "name", "user", "groups", "accounting", "keep",
  "cap_add", "cap_drop", "privileged", "no_new_privileges", "seccomp", "devices",
  "ulimits", "shm_size", "extra_hosts", "dns", "init", "labels",
  "mounts", "masked_paths", "readonly_paths", "sysctl", "oom_score_adj", "userns", "uidmap", "gidmap",
}
local KNOWN_FIELDS = {}
for _, name in ipairs(M.FIELDS) do KNOWN_FIELDS[name] = true end

M.DEFAULT_NAMESPACES = { "uts", "pid", "mount", "ipc", "net" }
local KNOWN_NAMESPACES = { uts = true, pid = true, mount = true, ipc = true, net = true, cgroup = true }
local JOINABLE_NAMESPACES = { net = true, ipc = true, uts = true, pid = true }
M.MIN_MEMORY = limits_table.RANGES.memory.min
M.CPU_ONLINE = "/sys/devices/system/cpu/online"
M.NODE_ONLINE = "/sys/devices/system/node/online"

--- The namespaces a container gets unless its spec says otherwise: docker's,
-- with a cgroup namespace on cgroup v2 hosts only, as docker.
function M.default_namespaces()
  local namespaces = { table.unpack(M.DEFAULT_NAMESPACES) }
  if cgroups.unified() then namespaces[#namespaces + 1] = "cgroup" end
  return namespaces
end

--- Check `spec` and return a normalized copy with defaults filled in.
-- Raises a user error naming the first problem.
-- @param labels optional map from field path ("limits.cpus") to the name the
--   user knows it by ("--cpus")
-- A function that raises a user error about a field of the spec, named as
-- `labels` (the CLI's words) names it.
local function complainer(labels)
  labels = labels or {}
  return function(field, fmt, ...)
    errors.raise(string.format("%s: " .. fmt, labels[field] or field, ...))
  end
end

function M.normalize(spec, labels)
  local bad = complainer(labels)
  if type(spec) ~= "table" then errors.raise("container spec must be a table") end
  for field in pairs(spec) do
    if not KNOWN_FIELDS[field] then bad(tostring(field), "unknown field (see lua/API.md)") end
  end
  local out = { limits = {}, env = {}, namespaces = {} }

  local command = spec.command
  if type(command) == "function" then
    out.command = { "(lua function)" } -- run in the container's init, see container.lua
  else
    if type(command) ~= "table" or #command == 0 then bad("command", "a command to run is required") end
    out.command = {}
    for i, word in ipairs(command) do
      if type(word) ~= "string" then bad("command", "item %d is not a string", i) end
      out.command[i] = word
    end
  end

  out.id = spec.id or fs.random_hex(32)
  if type(out.id) ~= "string" or #out.id ~= 64 or out.id:find("[^0-9a-f]") then
    bad("id", "must be 64 lowercase hex digits")
  end
  out.hostname = spec.hostname or out.id:sub(1, 12)
  if type(out.hostname) ~= "string" or not out.hostname:match("^[%w][%w.-]*$") or #out.hostname > 64 then
    bad("hostname", "%q is not a valid hostname (letters, digits, '.' and '-', at most 64)", tostring(out.hostname))
  end
  if spec.name ~= nil and (type(spec.name) ~= "string" or not spec.name:match("^[%w][%w_.-]*$") or #spec.name > 128) then
    bad("name", "%q is not a valid name (letters, digits, '_', '.' and '-')", tostring(spec.name))
  end
  out.name = spec.name
  if spec.user ~= nil then
    -- names are resolved in the container's /etc/passwd, once its root is in place
    local user, group = users.parse(spec.user)
    if not user then bad("user", "%s", group) end -- group is then the reason
    out.user = { name = user, group = group }
  end
  if spec.groups ~= nil then
    local groups, msg = users.check_groups(spec.groups)
    if not groups then bad("groups", "%s", msg) end
    out.groups = groups
  end
  out.keep = spec.keep and true or false
  out.accounting = spec.accounting and true or false
  out.tty = spec.tty and true or false
  out.stdin = spec.stdin and true or false
  if spec.workdir ~= nil and (type(spec.workdir) ~= "string" or spec.workdir:sub(1, 1) ~= "/") then
    bad("workdir", "must be an absolute path")
  end
  out.workdir = spec.workdir
  out.read_only = spec.read_only and true or false

  if spec.rootfs ~= nil and spec.image ~= nil then bad("rootfs", "give an image or a rootfs, not both") end
  if spec.rootfs ~= nil then
    if type(spec.rootfs) ~= "string" or spec.rootfs:sub(1, 1) ~= "/" then bad("rootfs", "must be an absolute path") end
    out.rootfs = spec.rootfs
  else
    out.image = spec.image or images.DEFAULT
    if not images.valid_name(out.image) then bad("image", "%q is not a valid image name", tostring(out.image)) end
  end

  out.stdio = {}
  for name, fd in pairs(spec.stdio or {}) do
    if name ~= "stdin" and name ~= "stdout" and name ~= "stderr" then bad("stdio", "unknown stream %q", tostring(name)) end
    if math.type(fd) ~= "integer" or fd < 0 then bad("stdio", "%s must be a file descriptor number", name) end
    out.stdio[name] = fd
  end
  out.tmpfs = {}
  for i, entry in ipairs(spec.tmpfs or {}) do
    local target = type(entry) == "table" and entry.target or entry
    if type(target) ~= "string" or target:sub(1, 1) ~= "/" then
      bad("tmpfs", "mount %d: target must be an absolute path in the container", i)
    end
    if type(entry) == "string" then
      out.tmpfs[i] = { target = target, flags = { nosuid = true, nodev = true }, data = "mode=1777,size=65536k" }
    else
      local mount, msg = workload.tmpfs_mount(entry)
      if not mount then bad("tmpfs", "%s: %s", target, msg) end
      out.tmpfs[i] = mount
    end
  end
  workload.check(spec, out, bad)

  out.volumes = {}
  for i, v in ipairs(spec.volumes or {}) do
    if type(v) ~= "table" or type(v.host) ~= "string" or v.host:sub(1, 1) ~= "/" then
      bad("volumes", "volume %d: host must be an absolute path", i)
    end
    if type(v.target) ~= "string" or v.target:sub(1, 1) ~= "/" then
      bad("volumes", "volume %d: target must be an absolute path in the container", i)
    end
    out.volumes[i] = { host = v.host, target = v.target, readonly = v.readonly and true or false }
  end

  local namespaces = spec.namespaces or M.default_namespaces()
  for _, name in ipairs(namespaces) do
    if not KNOWN_NAMESPACES[name] then bad("namespaces", "unknown namespace %q", tostring(name)) end
    out.namespaces[name] = true
  end
  out.join = {}
  for name, target in pairs(spec.join or {}) do
    if not JOINABLE_NAMESPACES[name] then bad("join", "cannot join a %q namespace (net, ipc, uts, pid)", tostring(name)) end
    local pid = type(target) == "table" and target.state == "running" and target.pid or target
    local is_path = type(pid) == "string" and pid:sub(1, 1) == "/"
    if not is_path and (math.type(pid) ~= "integer" or pid <= 0) then
      bad("join", "%s: a running container, a process id or a namespace's absolute path expected", name)
    end
    out.join[name] = pid
    out.namespaces[name] = nil -- joined, not made
  end

  if spec.network ~= nil then
    out.network = network.check_attachment(spec.network, bad)
    if not out.namespaces.net then
      bad("network", "a container on a network needs a network namespace of its own")
    end
  end

  -- HOME comes from the user's /etc/passwd entry, inside
  out.env = { PATH = exec.DEFAULT_PATH, HOSTNAME = out.hostname, TERM = out.tty and "xterm" or nil }
  for name, value in pairs(spec.env or {}) do
    if type(name) ~= "string" or name == "" or name:find("[=%z]") or type(value) ~= "string" then
      bad("env", "%q is not a NAME = \"value\" pair", tostring(name))
    end
    out.env[name] = value
  end

  out.labels = {}
  for name, value in pairs(spec.labels or {}) do
    if type(name) ~= "string" or type(value) ~= "string" then bad("labels", "a table of strings expected") end
    out.labels[name] = value
  end

  M.check_limits(spec.limits or {}, out.limits, bad)
  M.check_confinement(spec, out, bad)
  M.check_filesystem(spec, out, bad)
  userns.check(spec, out, bad, function(field) return (labels or {})[field] or field end)
  return out
end

local function absolute_paths(list, field, bad)
  if list == nil then return nil end
  if type(list) ~= "table" then bad(field, "a list of absolute paths expected") end
  local out = {}
  for i, path in ipairs(list) do
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then bad(field, "item %d is not an absolute path", i) end
    out[i] = path
  end
  return out
end

--- Check the fields an OCI config brings (lbox.oci_config) into `out`:
-- mounts { destination, type, source, options }, masked_paths and
-- readonly_paths (in place of docker's), sysctl (name -> value),
-- oom_score_adj.
function M.check_filesystem(spec, out, bad)
  if spec.mounts ~= nil then
    if type(spec.mounts) ~= "table" then bad("mounts", "a list of mounts expected") end
    out.mounts = {}
    for i, m in ipairs(spec.mounts) do
      if type(m) ~= "table" or type(m.destination) ~= "string" or m.destination:sub(1, 1) ~= "/" then
        bad("mounts", "mount %d: destination must be an absolute path in the container", i)
      end
      for _, key in ipairs { "type", "source" } do
        if m[key] ~= nil and type(m[key]) ~= "string" then bad("mounts", "mount %d: %s must be a string", i, key) end
      end
      local options = {}
      for j, option in ipairs(m.options or {}) do
        if type(option) ~= "string" then bad("mounts", "mount %d: option %d is not a string", i, j) end
        options[j] = option
      end
      out.mounts[i] = { destination = m.destination, type = m.type, source = m.source, options = options }
    end
  end
  out.masked_paths = absolute_paths(spec.masked_paths, "masked_paths", bad)
  out.readonly_paths = absolute_paths(spec.readonly_paths, "readonly_paths", bad)
  out.sysctl = {}
  for name, value in pairs(spec.sysctl or {}) do
    if type(name) ~= "string" or not name:match("^[%w_][%w_.-]*$") or name:find("%.%.") or type(value) ~= "string" then
      bad("sysctl", "%q is not a name = \"value\" pair", tostring(name))
    end
    out.sysctl[name] = value
  end
  if spec.oom_score_adj ~= nil then
    if math.type(spec.oom_score_adj) ~= "integer" or spec.oom_score_adj < -1000 or spec.oom_score_adj > 1000 then
      bad("oom_score_adj", "a whole number from -1000 to 1000 expected")
    end
    out.oom_score_adj = spec.oom_score_adj
  end
end

--- What starting the normalized `spec` takes from the host, checked before
-- anything is made there, in one place: the image's root (the built-in
-- image is made on first use), the --rootfs directory, the cgroup writes
-- the limits need, the device nodes to make and the rules that guard them
-- (and where this host's cgroups keep those), the seccomp program (read
-- from a profile file, or the store's cache), the network to join and its
-- ports, the open files limit. Raises a user error naming the field.
-- @return plan { lower = image root | nil, cgroup_writes = list,
--   devices = nodes (lbox.devices), device_plan = nil | from
--   cgroups.plan_devices, nodev = root and volumes nodev (no rules),
--   seccomp_program = BPF | nil (unconfined),
--   ulimits = the spec's and the default open files (lbox.workload) }
function M.plan(spec, labels)
  local bad = complainer(labels)
  local plan = {}
  if spec.rootfs then
    if lfs.attributes(spec.rootfs, "mode") ~= "directory" then bad("rootfs", "%s is not a directory", spec.rootfs) end
  else
    local image = images.get(spec.image)
    if not image then
      errors.raise(string.format("no image %q: see lbox image ls, or import one with lbox image import", spec.image))
    end
    plan.lower = image.lower -- overlayfs's lowerdir: its layers, the top one first
  end
  local writes, field, msg = cgroups.plan(spec.limits)
  if not writes then bad(field, "%s", msg) end
  plan.cgroup_writes = writes
  plan.ulimits = workload.plan_ulimits(spec.ulimits)
  M.plan_confinement(spec, plan, bad)
  -- an unknown or full network, a port published or bound already; the
  -- network step checks again, under the networks' lock
  if spec.network then network.check_admission(spec.network, bad) end
  return plan
end

local function contains(list, value)
  for _, item in ipairs(list) do if item == value then return true end end
  return false
end

--- Check the capabilities, devices and seccomp fields of `spec` into `out`
-- (no look at the host: lbox.spec.plan_confinement does that):
-- out.capabilities (names), out.no_new_privileges, out.privileged,
-- out.devices (HOST[:CONTAINER][:rwm] strings), out.seccomp (its source).
function M.check_confinement(spec, out, bad)
  for _, field in ipairs { "cap_add", "cap_drop" } do
    if spec[field] ~= nil and type(spec[field]) ~= "table" then bad(field, "a list of capability names expected") end
  end
  out.privileged = spec.privileged and true or false
  out.no_new_privileges = spec.no_new_privileges and true or false
  local caps, msg = capabilities.combine(spec.cap_add, spec.cap_drop)
  if not caps then bad(#(spec.cap_add or {}) > 0 and "cap_add" or "cap_drop", "%s", msg) end
  out.capabilities = out.privileged and capabilities.all() or caps
  out.devices = {}
  if spec.devices ~= nil and type(spec.devices) ~= "table" then bad("devices", "a list of HOST[:CONTAINER][:rwm]") end
  for _, text in ipairs(spec.devices or {}) do
    if type(text) ~= "string" then bad("devices", "a list of HOST[:CONTAINER][:rwm]") end
    out.devices[#out.devices + 1] = text
  end
  local source = spec.seccomp
  if source == nil then source = "default" end
  if type(source) == "string" and source ~= "default" and source ~= "unconfined" and source:sub(1, 1) ~= "/" then
    bad("seccomp", "%q: use default, unconfined, an absolute path to a profile, or a profile table", source)
  elseif type(source) ~= "string" and type(source) ~= "table" then
    bad("seccomp", "a profile name, path or table expected")
  end
  out.seccomp = source
end

--- What the confinement of the normalized `spec` takes from the host, into
-- `plan`: the device nodes (the --device ones; the host's, all of them,
-- when privileged), the rules that guard them with where the host's
-- cgroups take them (rules only when the container can make nodes or was
-- given some), and the compiled seccomp program.
function M.plan_confinement(spec, plan, bad)
  plan.devices = {}
  for _, text in ipairs(spec.devices) do
    local device, why = devices.parse(text)
    if not device then bad("devices", "%s", why) end
    plan.devices[#plan.devices + 1] = device
  end
  if spec.privileged then
    -- the host's devices, all of them, and no rules
    for _, device in ipairs(devices.host_devices()) do plan.devices[#plan.devices + 1] = device end
  elseif #plan.devices > 0 or contains(spec.capabilities, "CAP_MKNOD") then
    -- what it can make or was given, it may open only as the rules say
    local msg
    plan.device_plan, msg = cgroups.plan_devices(devices.rules(plan.devices))
    if not plan.device_plan then errors.raise(msg) end
  end
  -- without rules, nothing guards a node an image or a volume brings: its
  -- root and volumes are mounted nodev (a privileged one opens any device)
  plan.nodev = not spec.privileged and not plan.device_plan
  if spec.seccomp ~= "unconfined" and not spec.privileged then
    local msg
    plan.seccomp_program, msg = seccomp.program(spec.seccomp, spec.capabilities, store.root() .. "/cache/seccomp")
    if not plan.seccomp_program then bad("seccomp", "%s", msg) end
  end
end

local function cpu_list_within(text, online_file, what, field, bad)
  local list, msg = units.cpu_list(text)
  if not list then bad(field, "%s", msg) end
  local online = units.read_list_file(online_file) or { 0 }
  local present = {}
  for _, n in ipairs(online) do present[n] = true end
  for _, n in ipairs(list) do
    if not present[n] then
      bad(field, "%s %d is not online on this machine (online: %s)", what, n, table.concat(online, ","))
    end
  end
  return text
end

--- Check the limits table `limits` into `out`.
function M.check_limits(limits, out, bad)
  local function integer(field, value)
    local range = limits_table.RANGES[field]
    local min, max = range.min, range.max
    if math.type(value) ~= "integer" or value < min or value > max then
      bad("limits." .. field, "%s must be a whole number from %d to %d", tostring(value), min, max)
    end
    return value
  end
  for field in pairs(limits) do
    if not limits_table.known(field) then
      bad("limits", "unknown limit %q", tostring(field))
    end
  end
  if limits.memory then
    if math.type(limits.memory) ~= "integer" then
      bad("limits.memory", "%s must be a whole number", tostring(limits.memory))
    end
    out.memory = limits.memory
    if out.memory < M.MIN_MEMORY then
      bad("limits.memory", "%s is below the minimum of %s", units.format_size(out.memory),
        units.format_size(M.MIN_MEMORY))
    end
  end
  if limits.memory_swap then
    if not out.memory then bad("limits.memory_swap", "needs a memory limit as well") end
    if limits.memory_swap ~= limits_table.RANGES.memory_swap.unlimited then
      out.memory_swap = integer("memory_swap", limits.memory_swap)
      if out.memory_swap < out.memory then
        bad("limits.memory_swap", "%s is less than the memory limit (%s): it counts memory and swap together",
          units.format_size(out.memory_swap), units.format_size(out.memory))
      end
    else
      out.memory_swap = -1
    end
  end
  if limits.cpus then
    local ncpu = #(units.read_list_file(M.CPU_ONLINE) or { 0 })
    if type(limits.cpus) ~= "number" or limits.cpus <= 0 then
      bad("limits.cpus", "%s must be a positive number", tostring(limits.cpus))
    elseif limits.cpus > ncpu then
      bad("limits.cpus", "%s is more than the %d CPUs this machine has", tostring(limits.cpus), ncpu)
    end
    out.cpus = limits.cpus
  end
  if limits.cpu_shares then out.cpu_shares = integer("cpu_shares", limits.cpu_shares) end
  if limits.cpuset_cpus then
    out.cpuset_cpus = cpu_list_within(limits.cpuset_cpus, M.CPU_ONLINE, "CPU", "limits.cpuset_cpus", bad)
  end
  if limits.cpuset_mems then
    out.cpuset_mems = cpu_list_within(limits.cpuset_mems, M.NODE_ONLINE, "memory node", "limits.cpuset_mems", bad)
  end
  if limits.pids then
    local unlimited = limits_table.RANGES.pids.unlimited
    out.pids = limits.pids == unlimited and unlimited or integer("pids", limits.pids)
  end
end

return M

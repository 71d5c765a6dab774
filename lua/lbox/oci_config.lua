--- An OCI bundle's config.json (runtime-spec 1.1) as an lbox container
-- spec: checked field by field (types, absolute paths, known namespaces
-- and capabilities, a root), then mapped onto lbox's own fields, so that
-- `lbox oci` starts its containers with the same steps as `lbox run`.
-- What lbox cannot do (user and time namespaces, AppArmor, SELinux, block
-- I/O limits...) is refused with the field's name, never skipped.
local capabilities = require "lbox.capabilities"
local cjson = require "cjson"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local mounts = require "lbox.mounts"
local workload = require "lbox.workload"

local M = {}

M.OCI_VERSION = "1.1.0"

-- the runtime-spec's namespace types, as lbox calls them (nil: refused)
local NAMESPACES = { pid = "pid", network = "net", mount = "mount", ipc = "ipc", uts = "uts", cgroup = "cgroup",
                     user = false, time = false }
local JOINABLE = { net = true, ipc = true, uts = true, pid = true }
local HOOKS = { "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop" }
M.HOOKS = HOOKS
-- Hooks that run in the container's namespaces, which lbox does not do.
local HOOKS_INSIDE = { createContainer = true, startContainer = true }
local UNLIMITED = 2 ^ 63

-- The spec fields lbox names in errors, as the config calls them.
M.LABELS = {
  command = "process.args", rootfs = "root.path", hostname = "hostname", env = "process.env",
  workdir = "process.cwd", user = "process.user", groups = "process.user.additionalGids",
  namespaces = "linux.namespaces", join = "linux.namespaces",
  ["limits.memory"] = "linux.resources.memory.limit", ["limits.memory_swap"] = "linux.resources.memory.swap",
  ["limits.cpus"] = "linux.resources.cpu.quota", ["limits.cpu_shares"] = "linux.resources.cpu.shares",
  ["limits.cpuset_cpus"] = "linux.resources.cpu.cpus", ["limits.cpuset_mems"] = "linux.resources.cpu.mems",
  ["limits.pids"] = "linux.resources.pids.limit", ulimits = "process.rlimits", cap_add = "process.capabilities",
  cap_drop = "process.capabilities", seccomp = "linux.seccomp", devices = "linux.devices", mounts = "mounts",
  masked_paths = "linux.maskedPaths", readonly_paths = "linux.readonlyPaths", sysctl = "linux.sysctl",
  oom_score_adj = "process.oomScoreAdj",
}

local function bad(field, fmt, ...)
  errors.raise(string.format("config.json: %s: " .. fmt, field, ...), 1)
end

-- JSON's null and absent alike
local function get(t, key)
  local v = t[key]
  if v == cjson.null then return nil end
  return v
end

local function is_list(v)
  return type(v) == "table" and (next(v) == nil or v[1] ~= nil)
end

local function object(t, key, field)
  local v = get(t, key)
  if v ~= nil and (type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil)) then bad(field, "an object expected") end
  return v
end

local function list(t, key, field)
  local v = get(t, key)
  if v ~= nil and not is_list(v) then bad(field, "a list expected") end
  return v
end

local function string_field(t, key, field)
  local v = get(t, key)
  if v ~= nil and type(v) ~= "string" then bad(field, "a string expected") end
  return v
end

local function integer_field(t, key, field)
  local v = get(t, key)
  if v == nil then return nil end
  local n = math.tointeger(v)
  if type(v) ~= "number" or (not n and v < UNLIMITED) then bad(field, "a whole number expected") end
  return n or -1 -- 2^64 - 1, read as a float: unlimited
end

local function boolean_field(t, key, field)
  local v = get(t, key)
  if v ~= nil and type(v) ~= "boolean" then bad(field, "true or false expected") end
  return v
end

local function strings(t, key, field)
  local v = list(t, key, field)
  for i, item in ipairs(v or {}) do
    if type(item) ~= "string" then bad(field, "item %d is not a string", i) end
  end
  return v
end

local function absolute(path, field)
  if path:sub(1, 1) ~= "/" then bad(field, "%q is not an absolute path", path) end
  return path
end

local function refuse_nonempty(t, key, field, why)
  local v = get(t, key)
  if v ~= nil and v ~= "" and not (type(v) == "table" and next(v) == nil) then bad(field, "%s", why) end
end

--- Read and decode `bundle`/config.json. @return config; raises (exit 1)
function M.read(bundle)
  local path = bundle .. "/config.json"
  local text = fs.read_file(path)
  if not text then errors.raise(string.format("cannot read %s: no such file or not readable", path), 1) end
  local ok, config = pcall(cjson.decode, text)
  if not ok then errors.raise(string.format("config.json: not JSON: %s", tostring(config)), 1) end
  if type(config) ~= "table" or is_list(config) then errors.raise("config.json: an object expected", 1) end
  return config
end

local function check_capabilities(process)
  local caps = object(process, "capabilities", "process.capabilities")
  if not caps then return {} end
  local sets = {}
  for name in pairs(caps) do
    local field = "process.capabilities." .. tostring(name)
    if name ~= "bounding" and name ~= "effective" and name ~= "permitted" and name ~= "inheritable"
      and name ~= "ambient" then
      bad("process.capabilities", "unknown set %q", tostring(name))
    end
    sets[name] = {}
    for i, cap in ipairs(strings(caps, name, field) or {}) do
      local canonical = capabilities.canonical(cap)
      if not canonical or canonical == "ALL" or cap:upper():sub(1, 4) ~= "CAP_" then
        bad(field, "unknown capability %q", cap)
      end
      sets[name][i] = canonical
    end
  end
  -- lbox gives root one set, in the bounding, effective and permitted
  -- sets alike (none inheritable or ambient): the bounding set's, or the
  -- effective one's when none is given
  return sets.bounding or sets.effective or sets.permitted or {}
end

local function check_rlimits(process)
  local ulimits = {}
  for i, r in ipairs(list(process, "rlimits", "process.rlimits") or {}) do
    local field = "process.rlimits[" .. i .. "]"
    if type(r) ~= "table" then bad(field, "an object expected") end
    local kind = string_field(r, "type", field .. ".type") or bad(field, "type is required")
    local name = kind:match("^RLIMIT_(%u+)$")
    name = name and name:lower()
    local known = false
    for _, n in ipairs(workload.ULIMIT_NAMES) do known = known or n == name end
    if not known then bad(field, "unknown resource limit %q", kind) end
    local soft = integer_field(r, "soft", field .. ".soft")
    local hard = integer_field(r, "hard", field .. ".hard")
    if not soft or not hard then bad(field, "soft and hard are required") end
    ulimits[name] = { soft, hard }
  end
  return ulimits
end

local function check_process(config, spec, extra)
  local process = object(config, "process", "process")
  if not process then bad("process", "required") end
  local args = strings(process, "args", "process.args")
  if not args or #args == 0 then bad("process.args", "a command to run is required") end
  spec.command = args
  spec.env = {}
  for _, item in ipairs(strings(process, "env", "process.env") or {}) do
    local name, value = item:match("^([^=]+)=(.*)$")
    if not name then bad("process.env", "%q is not NAME=VALUE", item) end
    spec.env[name] = value
  end
  local cwd = string_field(process, "cwd", "process.cwd")
  if not cwd then bad("process.cwd", "required") end
  spec.workdir = absolute(cwd, "process.cwd")
  local user = object(process, "user", "process.user") or {}
  local uid = integer_field(user, "uid", "process.user.uid") or 0
  local gid = integer_field(user, "gid", "process.user.gid") or 0
  if uid < 0 or gid < 0 then bad("process.user", "uid and gid must not be negative") end
  local extra_gids = list(user, "additionalGids", "process.user.additionalGids")
  if extra_gids and #extra_gids > 0 then
    spec.groups = {}
    for i, id in ipairs(extra_gids) do spec.groups[i] = math.tointeger(id) or id end -- JSON's numbers are floats
  end
  refuse_nonempty(user, "username", "process.user.username", "is for Windows")
  integer_field(user, "umask", "process.user.umask")
  spec.user = uid .. ":" .. gid
  spec.tty = boolean_field(process, "terminal", "process.terminal") or false
  local size = object(process, "consoleSize", "process.consoleSize")
  if size then
    extra.console_size = { integer_field(size, "height", "process.consoleSize.height") or 0,
                           integer_field(size, "width", "process.consoleSize.width") or 0 }
  end
  local caps = check_capabilities(process)
  spec.cap_drop, spec.cap_add = { "ALL" }, caps
  spec.ulimits = check_rlimits(process)
  spec.no_new_privileges = boolean_field(process, "noNewPrivileges", "process.noNewPrivileges") or false
  spec.oom_score_adj = integer_field(process, "oomScoreAdj", "process.oomScoreAdj")
  refuse_nonempty(process, "apparmorProfile", "process.apparmorProfile", "AppArmor is not available to lbox on this host")
  refuse_nonempty(process, "selinuxLabel", "process.selinuxLabel", "SELinux is not available to lbox on this host")
  refuse_nonempty(process, "ioPriority", "process.ioPriority", "not supported by lbox")
  refuse_nonempty(process, "scheduler", "process.scheduler", "not supported by lbox")
end

local function check_mounts(config, spec)
  local out = {}
  for i, m in ipairs(list(config, "mounts", "mounts") or {}) do
    local field = "mounts[" .. i .. "]"
    if type(m) ~= "table" or is_list(m) then bad(field, "an object expected") end
    local destination = string_field(m, "destination", field .. ".destination") or bad(field, "destination is required")
    absolute(destination, field .. ".destination")
    local options = strings(m, "options", field .. ".options") or {}
    local is_bind = false
    for _, option in ipairs(options) do is_bind = is_bind or option == "bind" or option == "rbind" end
    local kind = string_field(m, "type", field .. ".type")
    if kind == "bind" then is_bind = true end
    local source = string_field(m, "source", field .. ".source")
    if is_bind then
      if not source then bad(field, "a bind mount needs a source") end
      absolute(source, field .. ".source")
      if not fs.kind(source) then bad(field .. ".source", "%s does not exist", source) end
      if kind == "bind" then options[#options + 1] = "rbind" end -- runc binds recursively
    elseif not kind then
      bad(field, "type is required for a mount that is not a bind")
    end
    for _, option in ipairs(options) do
      if option:find("^r%a+$") and not mounts.known_option(option) and option ~= "rro" then
        bad(field .. ".options", "recursive option %q is not supported by lbox", option)
      end
      if option:find("^idmap") or option == "ridmap" then bad(field .. ".options", "id-mapped mounts are not supported") end
    end
    refuse_nonempty(m, "uidMappings", field .. ".uidMappings", "id-mapped mounts are not supported")
    refuse_nonempty(m, "gidMappings", field .. ".gidMappings", "id-mapped mounts are not supported")
    out[i] = { destination = destination, type = kind ~= "bind" and kind or nil, source = source, options = options }
  end
  spec.mounts = out
end

local function check_namespaces(linux, spec)
  spec.namespaces, spec.join = {}, {}
  local seen = {}
  for i, ns in ipairs(list(linux, "namespaces", "linux.namespaces") or {}) do
    local field = "linux.namespaces[" .. i .. "]"
    if type(ns) ~= "table" then bad(field, "an object expected") end
    local kind = string_field(ns, "type", field .. ".type") or bad(field, "type is required")
    local name = NAMESPACES[kind]
    if name == nil then bad(field, "unknown namespace %q", kind) end
    if name == false then bad(field, "%s namespaces are not supported by lbox", kind) end
    if seen[name] then bad(field, "the %s namespace is given twice", kind) end
    seen[name] = true
    local path = string_field(ns, "path", field .. ".path")
    if path and path ~= "" then
      absolute(path, field .. ".path")
      if not JOINABLE[name] then bad(field, "lbox cannot join a %s namespace by path", kind) end
      if not fs.kind(path) then bad(field .. ".path", "%s does not exist", path) end
      spec.join[name] = path
    else
      spec.namespaces[#spec.namespaces + 1] = name
    end
  end
  if not seen.mount or spec.join.mount then
    bad("linux.namespaces", "lbox needs a mount namespace of the container's own")
  end
end

local function check_resources(linux, spec)
  local resources = object(linux, "resources", "linux.resources")
  spec.limits = {}
  if not resources then return end
  for key in pairs(resources) do
    if key ~= "memory" and key ~= "cpu" and key ~= "pids" and key ~= "devices" then
      refuse_nonempty(resources, key, "linux.resources." .. key, "not supported by lbox")
    end
  end
  local memory = object(resources, "memory", "linux.resources.memory") or {}
  for key in pairs(memory) do
    if key ~= "limit" and key ~= "swap" then
      refuse_nonempty(memory, key, "linux.resources.memory." .. key, "not supported by lbox")
    end
  end
  spec.limits.memory = integer_field(memory, "limit", "linux.resources.memory.limit")
  spec.limits.memory_swap = integer_field(memory, "swap", "linux.resources.memory.swap")
  if spec.limits.memory == -1 then spec.limits.memory = nil end
  if spec.limits.memory_swap and not spec.limits.memory then spec.limits.memory_swap = nil end
  local cpu = object(resources, "cpu", "linux.resources.cpu") or {}
  for key in pairs(cpu) do
    if key ~= "shares" and key ~= "quota" and key ~= "period" and key ~= "cpus" and key ~= "mems" then
      refuse_nonempty(cpu, key, "linux.resources.cpu." .. key, "not supported by lbox")
    end
  end
  spec.limits.cpu_shares = integer_field(cpu, "shares", "linux.resources.cpu.shares")
  local quota = integer_field(cpu, "quota", "linux.resources.cpu.quota")
  local period = integer_field(cpu, "period", "linux.resources.cpu.period") or 100000
  if quota and quota > 0 then spec.limits.cpus = quota / period end
  spec.limits.cpuset_cpus = string_field(cpu, "cpus", "linux.resources.cpu.cpus")
  spec.limits.cpuset_mems = string_field(cpu, "mems", "linux.resources.cpu.mems")
  if spec.limits.cpuset_cpus == "" then spec.limits.cpuset_cpus = nil end
  if spec.limits.cpuset_mems == "" then spec.limits.cpuset_mems = nil end
  local pids = object(resources, "pids", "linux.resources.pids") or {}
  local limit = integer_field(pids, "limit", "linux.resources.pids.limit")
  if limit then spec.limits.pids = limit > 0 and limit or -1 end
  -- the device cgroup: lbox's own rules (docker's defaults and the
  -- linux.devices nodes) stand; these are checked for shape only
  for i, rule in ipairs(list(resources, "devices", "linux.resources.devices") or {}) do
    if type(rule) ~= "table" or type(get(rule, "allow")) ~= "boolean" then
      bad("linux.resources.devices[" .. i .. "]", "allow (true or false) is required")
    end
  end
end

--- The lbox limits (lbox.spec's `limits`) of a runtime-spec resources
-- object, as `update --resources` gives it. Raises naming the field.
function M.limits(resources)
  if type(resources) ~= "table" or is_list(resources) then bad("resources", "an object expected") end
  local spec = {}
  check_resources({ resources = resources }, spec)
  return spec.limits
end

-- linux.devices: nodes the host has at the same path, as lbox --device gives them
local function check_devices(linux, spec)
  spec.devices = {}
  for i, d in ipairs(list(linux, "devices", "linux.devices") or {}) do
    local field = "linux.devices[" .. i .. "]"
    if type(d) ~= "table" then bad(field, "an object expected") end
    local path = string_field(d, "path", field .. ".path") or bad(field, "path is required")
    absolute(path, field .. ".path")
    if not fs.kind(path) then bad(field, "lbox gives only the host's own nodes, and the host has no %s", path) end
    spec.devices[#spec.devices + 1] = path
  end
end

local function check_linux(config, spec)
  local linux = object(config, "linux", "linux")
  if not linux then bad("linux", "required (lbox runs Linux containers)") end
  check_namespaces(linux, spec)
  refuse_nonempty(linux, "uidMappings", "linux.uidMappings", "user namespaces are not supported by lbox")
  refuse_nonempty(linux, "gidMappings", "linux.gidMappings", "user namespaces are not supported by lbox")
  refuse_nonempty(linux, "mountLabel", "linux.mountLabel", "SELinux is not available to lbox on this host")
  refuse_nonempty(linux, "intelRdt", "linux.intelRdt", "not supported by lbox")
  refuse_nonempty(linux, "personality", "linux.personality", "not supported by lbox")
  check_resources(linux, spec)
  check_devices(linux, spec)
  string_field(linux, "cgroupsPath", "linux.cgroupsPath")
  local sysctl = object(linux, "sysctl", "linux.sysctl") or {}
  for name, value in pairs(sysctl) do
    if type(value) ~= "string" then bad("linux.sysctl." .. name, "a string expected") end
  end
  spec.sysctl = sysctl
  spec.masked_paths = strings(linux, "maskedPaths", "linux.maskedPaths") or {}
  spec.readonly_paths = strings(linux, "readonlyPaths", "linux.readonlyPaths") or {}
  for _, key in ipairs { "maskedPaths", "readonlyPaths" } do
    for _, path in ipairs(spec[key == "maskedPaths" and "masked_paths" or "readonly_paths"]) do
      absolute(path, "linux." .. key)
    end
  end
  local propagation = string_field(linux, "rootfsPropagation", "linux.rootfsPropagation")
  if propagation and propagation ~= "" and propagation ~= "private" and propagation ~= "rprivate"
    and propagation ~= "slave" and propagation ~= "rslave" then
    bad("linux.rootfsPropagation", "%q: lbox keeps a container's mounts private (private, rprivate, slave, rslave)",
      propagation)
  end
  local seccomp = object(linux, "seccomp", "linux.seccomp")
  if seccomp then
    if type(get(seccomp, "defaultAction")) ~= "string" then bad("linux.seccomp.defaultAction", "required") end
    spec.seccomp = seccomp
  else
    spec.seccomp = "unconfined"
  end
end

local function check_hooks(config, extra)
  local hooks = object(config, "hooks", "hooks") or {}
  extra.hooks = {}
  local known = {}
  for _, name in ipairs(HOOKS) do known[name] = true end
  for name in pairs(hooks) do
    if not known[name] then bad("hooks", "unknown hook kind %q", tostring(name)) end
  end
  for _, name in ipairs(HOOKS) do
    local list_of = list(hooks, name, "hooks." .. name) or {}
    if #list_of > 0 and HOOKS_INSIDE[name] then
      bad("hooks." .. name, "hooks in the container's namespaces are not supported by lbox")
    end
    extra.hooks[name] = {}
    for i, hook in ipairs(list_of) do
      local field = "hooks." .. name .. "[" .. i .. "]"
      if type(hook) ~= "table" then bad(field, "an object expected") end
      local path = string_field(hook, "path", field .. ".path") or bad(field, "path is required")
      absolute(path, field .. ".path")
      extra.hooks[name][i] = { path = path, args = strings(hook, "args", field .. ".args") or { path },
                               env = strings(hook, "env", field .. ".env") or {},
                               timeout = integer_field(hook, "timeout", field .. ".timeout") }
    end
  end
end

--- The lbox spec of `config` (decoded config.json) for the bundle at
-- `bundle` (an absolute path), with lbox id `id`. Raises (exit 1) naming
-- the first field that is wrong.
-- @return spec, extra { annotations, hooks = kind -> list, console_size }
function M.to_spec(config, bundle, id)
  local extra = {}
  local version = string_field(config, "ociVersion", "ociVersion")
  if not version then bad("ociVersion", "required") end
  local root = object(config, "root", "root")
  if not root then bad("root", "required") end
  local path = string_field(root, "path", "root.path")
  if not path or path == "" then bad("root.path", "required") end
  if path:sub(1, 1) ~= "/" then path = bundle .. "/" .. path end
  if fs.kind(path) ~= "directory" then bad("root.path", "%s is not a directory", path) end
  local spec = { id = id, rootfs = path, read_only = boolean_field(root, "readonly", "root.readonly") or false,
                 accounting = true, stdin = true }
  spec.hostname = string_field(config, "hostname", "hostname")
  if spec.hostname == "" then spec.hostname = nil end
  refuse_nonempty(config, "domainname", "domainname", "not supported by lbox")
  check_process(config, spec, extra)
  check_mounts(config, spec)
  check_linux(config, spec)
  check_hooks(config, extra)
  extra.annotations = object(config, "annotations", "annotations") or {}
  for key, value in pairs(extra.annotations) do
    if type(value) ~= "string" then bad("annotations." .. tostring(key), "a string expected") end
  end
  return spec, extra
end

--- A default config.json, as `runc spec` writes it: sh on a terminal in
-- ./rootfs, with runc's mounts, capabilities, masked and read-only paths.
function M.default()
  local caps = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" }
  return {
    ociVersion = M.OCI_VERSION,
    process = {
      terminal = true, user = { uid = 0, gid = 0 }, args = { "sh" },
      env = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm" },
      cwd = "/",
      capabilities = { bounding = caps, effective = caps, permitted = caps },
      rlimits = { { type = "RLIMIT_NOFILE", hard = 1024, soft = 1024 } },
      noNewPrivileges = true,
    },
    root = { path = "rootfs", readonly = true },
    hostname = "lbox",
    mounts = {
      { destination = "/proc", type = "proc", source = "proc" },
      { destination = "/dev", type = "tmpfs", source = "tmpfs",
        options = { "nosuid", "strictatime", "mode=755", "size=65536k" } },
      { destination = "/dev/pts", type = "devpts", source = "devpts",
        options = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" } },
      { destination = "/dev/shm", type = "tmpfs", source = "shm",
        options = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" } },
      { destination = "/dev/mqueue", type = "mqueue", source = "mqueue", options = { "nosuid", "noexec", "nodev" } },
      { destination = "/sys", type = "sysfs", source = "sysfs", options = { "nosuid", "noexec", "nodev", "ro" } },
      { destination = "/sys/fs/cgroup", type = "cgroup", source = "cgroup",
        options = { "nosuid", "noexec", "nodev", "relatime", "ro" } },
    },
    linux = {
      resources = { devices = { { allow = false, access = "rwm" } } },
      namespaces = { { type = "pid" }, { type = "network" }, { type = "ipc" }, { type = "uts" }, { type = "mount" },
                     { type = "cgroup" } },
      maskedPaths = { "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi" },
      readonlyPaths = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" },
    },
  }
end

return M

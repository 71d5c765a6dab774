--- The container spec: what a container is, as plain data, and its checks.
--
--     {
--       command = { "sh", "-c", "echo hi" },   -- required, argv
--       image = "busybox",                     -- an image of the store (the default), or
--       rootfs = "/srv/root",                  -- a directory to run on as it is
--       volumes = { { host = "/srv/data", target = "/data", readonly = false } },
--       read_only = false,                     -- the root mounted read-only
--       tmpfs = { "/work", { target = "/run", options = "size=10m,exec" } },
--                                              -- empty tmpfs mounts: a path (nosuid, 64 MiB), or
--                                              --   docker's --tmpfs options (noexec, nosuid)
--       ulimits = { nofile = { 1024, 4096 } }, -- soft, hard (-1: unlimited); default nofile 1048576
--       shm_size = bytes,                      -- /dev/shm, default 64 MiB
--       extra_hosts = { { name = "db", ip = "10.0.0.5" } },  -- more /etc/hosts lines
--       dns = { "9.9.9.9" },                   -- /etc/resolv.conf nameservers (default: the host's)
--       init = false,                          -- a small init as PID 1 (lbox.init_process)
--       stdio = { stdin = fd, stdout = fd },   -- lbox's descriptors as the container's
--   command may also be a Lua function: the container's init runs it
--   instead of exec (fork semantics); its result is the exit code.
--       env = { NAME = "value" },               -- added to PATH, HOSTNAME, TERM, and HOME
--                                              --   from the user's /etc/passwd entry
--       hostname = "box",                      -- default: the id's first 12 digits
--       namespaces = { "uts", "pid", "mount", "ipc", "net", "cgroup" },
--                                              -- the default; "cgroup" on v2 hosts only, as docker
--       join = { net = box, uts = 1234 },      -- share these of a running container (or pid)
--                                              --   instead of new ones: net, ipc, uts, pid
--       tty = false, stdin = false,             -- -t and -i
--       workdir = "/",                          -- absolute path
--       limits = { memory = bytes, memory_swap = bytes or -1, cpus = 1.5,
--                  cpu_shares = 2..262144, cpuset_cpus = "0-1",
--                  cpuset_mems = "0", pids = n or -1 },
--       id = "64 hex digits",                   -- default: random
--       name = "web",                           -- unique among the store's containers
--       user = "1000:1000",                     -- USER[:GROUP] to run the command as: names
--                                              --   or numbers, from the container's /etc files
--       accounting = false,                     -- a cgroup for stats even without limits
--       keep = false,                           -- keep its directory (layer, state, log) once
--                                              --   it ended, for ps -a, logs, commit, rm
--     }
local cgroups = require "lbox.cgroups"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local fs = require "lbox.fs"
local images = require "lbox.images"
local units = require "lbox.units"
local users = require "lbox.users"
local workload = require "lbox.workload"

local M = {}

M.DEFAULT_NAMESPACES = { "uts", "pid", "mount", "ipc", "net" }
local KNOWN_NAMESPACES = { uts = true, pid = true, mount = true, ipc = true, net = true, cgroup = true }
local JOINABLE_NAMESPACES = { net = true, ipc = true, uts = true, pid = true }
M.MIN_MEMORY = 6 * 1024 * 1024 -- docker's minimum: below it the runtime itself cannot start
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
function M.normalize(spec, labels)
  labels = labels or {}
  local function bad(field, fmt, ...)
    errors.raise(string.format("%s: " .. fmt, labels[field] or field, ...))
  end
  if type(spec) ~= "table" then errors.raise("container spec must be a table") end
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
    if math.type(pid) ~= "integer" or pid <= 0 then
      bad("join", "%s: a running container or a process id expected", name)
    end
    out.join[name] = pid
    out.namespaces[name] = nil -- joined, not made
  end

  -- HOME comes from the user's /etc/passwd entry, inside
  out.env = { PATH = exec.DEFAULT_PATH, HOSTNAME = out.hostname, TERM = out.tty and "xterm" or nil }
  for name, value in pairs(spec.env or {}) do
    if type(name) ~= "string" or name == "" or name:find("[=%z]") or type(value) ~= "string" then
      bad("env", "%q is not a NAME = \"value\" pair", tostring(name))
    end
    out.env[name] = value
  end

  M.check_limits(spec.limits or {}, out.limits, bad)
  return out
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
  local function integer(field, value, min, max)
    if math.type(value) ~= "integer" or value < min or value > max then
      bad("limits." .. field, "%s must be a whole number from %d to %d", tostring(value), min, max)
    end
    return value
  end
  for field in pairs(limits) do
    if not ({ memory = 1, memory_swap = 1, cpus = 1, cpu_shares = 1, cpuset_cpus = 1, cpuset_mems = 1, pids = 1 })[field] then
      bad("limits", "unknown limit %q", tostring(field))
    end
  end
  if limits.memory then
    out.memory = integer("memory", limits.memory, 1, math.maxinteger)
    if out.memory < M.MIN_MEMORY then
      bad("limits.memory", "%s is below the minimum of %s", units.format_size(out.memory),
        units.format_size(M.MIN_MEMORY))
    end
  end
  if limits.memory_swap then
    if not out.memory then bad("limits.memory_swap", "needs a memory limit as well") end
    if limits.memory_swap ~= -1 then
      out.memory_swap = integer("memory_swap", limits.memory_swap, 1, math.maxinteger)
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
  if limits.cpu_shares then out.cpu_shares = integer("cpu_shares", limits.cpu_shares, 2, 262144) end
  if limits.cpuset_cpus then
    out.cpuset_cpus = cpu_list_within(limits.cpuset_cpus, M.CPU_ONLINE, "CPU", "limits.cpuset_cpus", bad)
  end
  if limits.cpuset_mems then
    out.cpuset_mems = cpu_list_within(limits.cpuset_mems, M.NODE_ONLINE, "memory node", "limits.cpuset_mems", bad)
  end
  if limits.pids then
    out.pids = limits.pids == -1 and -1 or integer("pids", limits.pids, 1, 4194304)
  end
end

return M

-- lbox run [OPTIONS] [IMAGE] [COMMAND [ARG...]]: run COMMAND in a new
-- container on IMAGE (default: the built-in busybox image), in new UTS, PID,
-- mount, IPC and network namespaces, with optional limits.
local core = require "lbox.core"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local fs = require "lbox.fs"
local images = require "lbox.images"
local lbox = require "lbox"
local monitor = require "lbox.lazy" "lbox.monitor"
local lbox_spec = require "lbox.spec"
local lfs = require "lfs"
local limits_table = require "lbox.limits"
local options = require "lbox.options"
local registry = require "lbox.lazy" "lbox.registry"
local state = require "lbox.state"
local units = require "lbox.units"
local workload = require "lbox.workload"

local RUN_OPTIONS = {
  { "interactive", short = "i", help = "keep stdin attached" },
  { "tty", short = "t", help = "allocate a pseudo-terminal" },
  { "hostname", short = "h", value = "NAME", help = "container hostname (default: its short id)" },
  { "env", short = "e", value = "NAME=VALUE", list = true, help = "set an environment variable (NAME alone: the host's value)" },
  { "workdir", short = "w", value = "DIR", help = "working directory of the command" },
  { "entrypoint", value = "COMMAND", help = "run COMMAND instead of the image's entrypoint (\"\": none)" },
  { "rootfs", value = "DIR", help = "run on this directory instead of an image" },
  { "volume", short = "v", value = "HOST:CTR[:ro]", list = true, help = "bind-mount a host path (repeatable)" },
  { "read-only", help = "mount the container's root read-only" },
  { "network", value = "MODE",
    help = "none (the default: lo only), bridge (lbox's default network), NAME (see lbox network), host, "
      .. "or container:NAME (share its network)" },
  { "publish", short = "p", value = "[IP:]HOSTPORT:PORT[/tcp|/udp]", list = true,
    help = "publish a port of the container on the host (repeatable; implies --network bridge)" },
  { "publish-all", short = "P",
    help = "publish each port the image exposes on a free host port (see lbox inspect; implies --network bridge)" },
  { "detach", short = "d", help = "run in the background and print the container's id" },
  { "name", value = "NAME", help = "a unique name for the container" },
  { "rm", help = "remove the container when it ends (always, without -d)" },
  { "env-file", value = "FILE", list = true, help = "read NAME=VALUE lines from FILE" },
  { "user", short = "u", value = "USER[:GROUP]", help = "run the command as this user (name or number)" },
  { "memory", short = "m", value = "SIZE", aliases = { "mem" }, help = "memory limit: 100m, 1g (mydocker: -mem)" },
  { "memory-swap", value = "SIZE", help = "memory plus swap limit; -1 for unlimited swap" },
  { "cpus", value = "N", help = "CPU quota in CPUs: 1.5" },
  { "cpu", value = "PERCENT", aliases = { "cpu" }, help = "CPU quota in percent of one CPU (mydocker's -cpu)" },
  { "cpu-shares", short = "c", value = "N", help = "relative CPU weight, 2 to 262144 (see lbox.limits)" },
  { "cpuset-cpus", value = "LIST", aliases = { "cpuset" }, help = "CPUs allowed: 0-1,3" },
  { "cpuset-mems", value = "LIST", help = "memory nodes allowed: 0" },
  { "pids-limit", value = "N", help = "maximum number of processes; -1 for unlimited" },
  { "ulimit", value = "NAME=SOFT[:HARD]", list = true,
    help = "a resource limit: nofile=1024:4096 (default nofile 1048576)" },
  { "tmpfs", value = "PATH[:OPTS]", list = true,
    help = "an empty tmpfs at PATH: size=10m,mode=1777,exec,ro... (noexec, nosuid)" },
  { "shm-size", value = "SIZE", help = "size of /dev/shm (default 64m)" },
  { "add-host", value = "NAME:IP", list = true, help = "add a line to /etc/hosts" },
  { "dns", value = "IP", list = true, help = "a nameserver for /etc/resolv.conf (default: the host's)" },
  { "init", help = "run a small init as PID 1 that reaps zombies and passes signals on" },
  { "restart", value = "POLICY", help = "with -d: no, always, unless-stopped, on-failure[:N] (kept by the monitor)" },
  { "cap-add", value = "CAP", list = true, help = "add a capability to docker's default set (NET_ADMIN, ALL)" },
  { "cap-drop", value = "CAP", list = true, help = "drop a capability from the set (CHOWN, ALL)" },
  { "device", value = "HOST[:CTR][:rwm]", list = true, help = "give the container a host device (repeatable)" },
  { "privileged", help = "every capability, the host's devices, no seccomp, nothing masked" },
  { "security-opt", value = "OPT", list = true,
    help = "seccomp=unconfined, seccomp=PROFILE.json (docker's format), no-new-privileges" },
  { "userns", value = "MODE",
    help = "host (the default) or auto: root in the container is a range of ids of user lbox in /etc/subuid" },
  { "uidmap", value = "CTR:HOST:N", list = true, help = "map N user ids from CTR in the container to HOST (repeatable)" },
  { "gidmap", value = "CTR:HOST:N", list = true, help = "map N group ids, as --uidmap (default: as --uidmap)" },
}

local LABELS = {
  hostname = "--hostname", workdir = "--workdir", env = "--env", rootfs = "--rootfs", image = "image",
  name = "--name", user = "--user", network = "--network", ["network.ports"] = "-p",
  volumes = "--volume",
  ["limits.memory"] = "--memory", ["limits.memory_swap"] = "--memory-swap",
  ["limits.cpus"] = "--cpus", ["limits.cpu_shares"] = "--cpu-shares",
  ["limits.cpuset_cpus"] = "--cpuset-cpus", ["limits.cpuset_mems"] = "--cpuset-mems",
  ["limits.pids"] = "--pids-limit",
  tmpfs = "--tmpfs", ulimits = "--ulimit", shm_size = "--shm-size", extra_hosts = "--add-host", dns = "--dns",
  cap_add = "--cap-add", cap_drop = "--cap-drop", devices = "--device", seccomp = "--security-opt seccomp",
  userns = "--userns", uidmap = "--uidmap", gidmap = "--gidmap", privileged = "--privileged",
  join = "--network container:NAME",
}

local function parsed(flag, value, msg)
  if value == nil then errors.raise(flag .. ": " .. msg) end
  return value
end

local function limits_from(opts)
  local limits = {}
  if opts.memory then limits.memory = parsed("--memory", units.size(opts.memory)) end
  local swap = opts["memory-swap"]
  if swap then limits.memory_swap = swap == "-1" and -1 or parsed("--memory-swap", units.size(swap)) end
  if opts.cpus and opts.cpu then errors.raise("--cpus and --cpu set the same limit: give one") end
  if opts.cpus then limits.cpus = parsed("--cpus", units.decimal(opts.cpus)) end
  if opts.cpu then limits.cpus = parsed("--cpu", units.integer(opts.cpu, 1, 100000)) / 100 end
  if opts["cpu-shares"] then
    local range = limits_table.RANGES.cpu_shares
    limits.cpu_shares = parsed("--cpu-shares", units.integer(opts["cpu-shares"], range.min, range.max))
  end
  limits.cpuset_cpus = opts["cpuset-cpus"]
  limits.cpuset_mems = opts["cpuset-mems"]
  if opts["pids-limit"] then
    -- like docker: zero or less means no limit
    local range = limits_table.RANGES.pids
    local n = parsed("--pids-limit", units.integer(opts["pids-limit"], range.unlimited, range.max))
    limits.pids = n <= 0 and range.unlimited or n
  end
  return limits
end

-- docker's env files: NAME=VALUE or NAME (the host's value) per line; # comments
local function env_file_lines(files)
  local lines = {}
  for _, file in ipairs(files or {}) do
    local text = fs.read_file(file) or errors.raise(string.format("--env-file %s: cannot read it", file))
    local n = 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      line = line:gsub("\r$", "")
      if line:find("%S") and not line:match("^%s*#") then
        local name = line:match("^([^=]*)")
        if name == "" or name:find("[%s%z]") then
          errors.raise(string.format("--env-file %s:%d: %q is not NAME=VALUE", file, n, line))
        end
        lines[#lines + 1] = line
      end
    end
  end
  return lines
end

-- the environment from --env-file, then -e (which wins)
local function env_from(list, files, base)
  local env = base or {}
  local items = env_file_lines(files)
  for _, item in ipairs(list or {}) do items[#items + 1] = item end
  for _, item in ipairs(items) do
    local name, value = item:match("^([^=]*)=(.*)$")
    name = name or item
    value = value or os.getenv(name)
    if name == "" then errors.raise(string.format("--env %q: the variable needs a name", item)) end
    env[name] = value
  end
  return env
end

local function volumes_from(list)
  local volumes = {}
  for _, item in ipairs(list or {}) do
    local host, target, mode = item:match("^([^:]+):([^:]+):?([^:]*)$")
    if not host or (mode ~= "" and mode ~= "ro" and mode ~= "rw") then
      errors.raise(string.format("--volume %q: use HOST:CONTAINER[:ro]", item))
    end
    if target:sub(1, 1) ~= "/" then
      errors.raise(string.format("--volume %q: the container path must be absolute", item))
    end
    if host:sub(1, 1) ~= "/" then host = lfs.currentdir() .. "/" .. host end
    volumes[#volumes + 1] = { host = host, target = target, readonly = mode == "ro" }
  end
  return volumes
end

-- -p [IP:]HOSTPORT:PORT[/PROTOCOL] items as the spec's ports
local function ports_from(list)
  local ports = {}
  for _, item in ipairs(list or {}) do
    local rest, protocol = item:match("^(.-)/(%a+)$")
    rest, protocol = rest or item, protocol or "tcp"
    local host_ip, host_port, container_port = rest:match("^([%d.]+):(%d+):(%d+)$")
    if not host_ip then host_port, container_port = rest:match("^(%d+):(%d+)$") end
    if not host_port then errors.raise(string.format("-p %q: use [IP:]HOSTPORT:PORT[/tcp|/udp]", item)) end
    ports[#ports + 1] = { host_ip = host_ip, host_port = math.tointeger(tonumber(host_port)),
                          container_port = math.tointeger(tonumber(container_port)), protocol = protocol }
  end
  return ports
end

-- --network: the namespaces to make and to join, and the network to be
-- on, as docker's modes; ports need a network.
local function network_from(mode, ports)
  if #ports > 0 and (mode == "none" or mode == "host" or (mode and mode:match("^container:"))) then
    errors.raise(string.format("-p: a container with --network %s has no ports of its own to publish", mode))
  end
  if mode == nil and #ports > 0 then mode = "bridge" end
  if mode == nil or mode == "none" then return nil, nil end
  if mode ~= "host" and not mode:match("^container:") then
    return nil, nil, { name = mode, ports = ports }
  end
  if mode == "host" then
    local namespaces = {}
    for _, name in ipairs(lbox_spec.default_namespaces()) do
      if name ~= "net" then namespaces[#namespaces + 1] = name end
    end
    return namespaces, nil
  end
  local ref = mode:match("^container:(.+)$")
  if not ref then errors.raise(string.format("--network %q: use none, host or container:NAME", mode)) end
  local other = state.find(ref, errors.codes.lbox)
  -- its recorded process, not one that took the number since
  local process = state.open_process(other)
  if not process then
    errors.raise(string.format("--network %s: container %s is not running", mode, other.id:sub(1, 12)))
  end
  core.close(process)
  return nil, { net = other.pid }
end

-- Each item of a repeatable flag through `parse` (a lbox.workload parser).
local function each(flag, list, parse)
  local out = {}
  for _, item in ipairs(list or {}) do
    local value, extra = parse(item)
    if value == nil then errors.raise(flag .. " " .. extra) end
    out[#out + 1] = extra and { value, extra } or value
  end
  return out
end

local function ulimits_from(list)
  local ulimits = {}
  for _, pair in ipairs(each("--ulimit", list, workload.parse_ulimit)) do
    if ulimits[pair[1]] then errors.raise(string.format("--ulimit %s: given twice", pair[1])) end
    ulimits[pair[1]] = pair[2]
  end
  return ulimits
end

local function dns_from(list)
  for _, server in ipairs(list or {}) do
    if not workload.is_ip(server) then errors.raise(string.format("--dns %q: an IPv4 or IPv6 address expected", server)) end
  end
  return list
end

local function absolute(path)
  if path and path:sub(1, 1) ~= "/" then return lfs.currentdir() .. "/" .. path end
  return path
end

-- --security-opt, as docker: seccomp=unconfined|FILE, no-new-privileges[=true|false]
local function security_from(list)
  local security = {}
  for _, item in ipairs(list or {}) do
    local key, value = item:match("^([%w-]+)[=:](.*)$")
    key = key or item
    if key == "seccomp" and value and value ~= "" then
      security.seccomp = value == "unconfined" and value or absolute(value)
    elseif key == "no-new-privileges" and (value == nil or value == "true" or value == "false") then
      security.no_new_privileges = value ~= "false"
    else
      errors.raise(string.format("--security-opt %q: use seccomp=unconfined, seccomp=FILE or no-new-privileges", item))
    end
  end
  return security
end

local RUN = {
  name = "run", synopsis = { "[OPTIONS] [IMAGE] [COMMAND [ARG...]]" },
  summary = "run a command in a new container",
  description = "Runs COMMAND in new UTS, PID, mount, IPC and network namespaces (and a cgroup namespace on "
    .. "cgroup v2), on IMAGE from lbox's store when the first word names one, else on the built-in busybox "
    .. "image, under a copy-on-write overlay, confined as docker confines (its default capabilities and "
    .. "seccomp profile, device rules, masked paths); with -d, in the background under a monitor. COMMAND "
    .. "(default: the image's) is looked up in PATH as a shell does. lbox exits with the container's status: "
    .. "its exit code, or 128+N if signal N killed it; 125 for lbox's own errors, 126 when COMMAND cannot be "
    .. "run, 127 when it is not found.",
  options = RUN_OPTIONS,
}
local opts, args = options.command(RUN, { ... })
if not opts then return 0 end
local first = 1

require("lbox.container").check_root()
-- The first word is the image when the store has one of that name.
local image
if not opts.rootfs and args[first] and images.valid_name(args[first]) and images.get(args[first]) then
  image = images.get(args[first])
  first = first + 1
elseif not opts.rootfs and args[first] and args[first]:find("^%w[^/]*/") and registry.parse(args[first]) then
  -- a registry's reference is never a command: say what is missing
  errors.raise(string.format("no image %s in the store: lbox pull %s first (lbox run does not pull)", args[first],
    args[first]))
elseif not opts.rootfs and not opts.entrypoint and not opts.volume and args[first] and images.valid_name(args[first])
  and not args[first]:find("/") and not images.has_command(images.get(images.DEFAULT), args[first],
    exec.DEFAULT_PATH) then
  -- neither (and no volume that could bring it): a docker user meant an
  -- image ("Unable to find image"), which lbox does not pull
  errors.raise(string.format("no image %s in the store, and no command %s in the %s image: lbox pull %s first "
    .. "(lbox run does not pull)", args[first], args[first], images.DEFAULT, args[first]))
end
-- the image's Entrypoint and Cmd, Env, WorkingDir and User, as docker applies them
local settings = images.run_settings(image, table.move(args, first, #args, 1, {}), opts.entrypoint)
local command = settings.command
if #command == 0 then
  errors.raise('"lbox run" requires a command to run (see lbox run --help)')
end

local ports = ports_from(opts.publish)
if opts["publish-all"] then
  -- host port 0: the network chooses a free one as the container starts
  for _, exposed in ipairs(settings.exposed) do
    ports[#ports + 1] = { host_port = 0, container_port = exposed.port, protocol = exposed.protocol }
  end
end
local namespaces, join, attachment = network_from(opts.network, ports)
local security = security_from(opts["security-opt"])
local spec = {
  command = command,
  namespaces = namespaces,
  join = join,
  network = attachment,
  image = image and image.name,
  rootfs = absolute(opts.rootfs),
  volumes = volumes_from(opts.volume),
  read_only = opts["read-only"],
  hostname = opts.hostname,
  env = env_from(opts.env, opts["env-file"], settings.env),
  name = opts.name,
  user = opts.user or settings.user,
  labels = settings.labels,
  keep = opts.detach and not opts.rm,
  accounting = opts.detach, -- lbox stats, for what runs in the background
  workdir = opts.workdir or settings.workdir,
  stdin = opts.interactive,
  tty = opts.tty,
  limits = limits_from(opts),
  ulimits = ulimits_from(opts.ulimit),
  tmpfs = each("--tmpfs", opts.tmpfs, workload.parse_tmpfs),
  shm_size = opts["shm-size"] and parsed("--shm-size", units.size(opts["shm-size"])),
  extra_hosts = each("--add-host", opts["add-host"], workload.parse_host),
  dns = dns_from(opts.dns),
  init = opts.init,
  cap_add = opts["cap-add"],
  cap_drop = opts["cap-drop"],
  privileged = opts.privileged,
  devices = opts.device,
  no_new_privileges = security.no_new_privileges,
  seccomp = security.seccomp,
  userns = opts.userns,
  uidmap = opts.uidmap,
  gidmap = opts.gidmap,
}
local restart
if opts.restart then
  local policy, msg = monitor.parse_restart(opts.restart)
  if not policy then errors.raise("--restart " .. msg) end
  if policy.name ~= "no" and not opts.detach then
    errors.raise("--restart needs -d: a container in the foreground ends with its lbox")
  end
  if policy.name ~= "no" and opts.rm then errors.raise("--restart and --rm conflict: give one") end
  restart = { policy = policy }
end
restart = restart or { policy = { name = "no" } }
local box = lbox.container(spec, LABELS)
if opts.detach then
  if opts.tty or opts.interactive then errors.raise("-d runs in the background: it takes neither -t nor -i") end
  -- the same container anew (its id, and so its layer and name), for a
  -- restart policy or lbox restart
  restart.respawn = function()
    spec.id = box.id
    return lbox.container(spec, LABELS)
  end
  print(monitor.detach(box, restart))
  return 0
end
local status, cleanup_failure = box:start():wait()
if cleanup_failure then
  io.stderr:write(string.format("lbox: warning: container %s: cannot %s\n", box.id:sub(1, 12), cleanup_failure))
end
if status.oom then
  io.stderr:write(string.format("lbox: container %s was killed: out of memory (limit %s)\n",
    box.id:sub(1, 12), opts.memory))
end
return status.exit_code

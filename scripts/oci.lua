-- lbox oci [GLOBAL OPTIONS] COMMAND ...: lbox as an OCI runtime, with
-- runc's command line (lbox-oci is this command under a name podman,
-- conmon or containerd can be pointed at). The containers are lbox's
-- (lbox.oci, lbox.oci_config); errors are one line and exit 1, as runc's,
-- and go to --log too, in --log-format.
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local oci = require "lbox.oci"
local oci_config = require "lbox.oci_config"
local options = require "lbox.options"
local users = require "lbox.users"

local GLOBAL = {
  name = "oci",
  synopsis = { "[--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] [ID] [ARGS...]" },
  summary = "lbox as an OCI runtime: runc's commands on a bundle's config.json",
  description = "The OCI runtime command line, as runc's: create, start, state, kill, delete, run, exec, ps, "
    .. "list, pause, resume, update, features, spec. A bundle (config.json and its root) becomes an lbox container, "
    .. "set up by the same steps as lbox run's; create leaves its init waiting before exec, start lets it go. "
    .. "State lives under --root, one directory per container. Errors: one line, exit 1, also written to "
    .. "--log. lbox-oci is this command under a name for podman --runtime, conmon and containerd.",
  subcommands = { "create", "start", "state", "kill", "delete", "run", "exec", "ps", "list", "pause", "resume",
                  "update", "features", "spec" },
  options = {
    { "root", value = "DIR", help = "where containers' state lives (default /run/lbox-oci)" },
    { "log", value = "FILE", help = "append errors (and with --debug, what is done) to FILE" },
    { "log-format", value = "text|json", help = "the log's format (default text)" },
    { "debug", help = "log what is done" },
    { "systemd-cgroup", help = "refused: lbox manages cgroups itself, without systemd" },
    { "rootless", value = "true|false|auto", help = "only false or auto: lbox runs as root" },
  },
  operands = { 1 },
}

local commands = {}
local log_file, log_format, debug_log

local function log(level, msg)
  if not log_file then
    if level ~= "error" then io.stderr:write(string.format("lbox-oci: %s: %s\n", level, msg)) end
    return
  end
  local time = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local line
  if log_format == "json" then
    line = (cjson.encode { level = level, msg = msg, time = time }:gsub("\\/", "/"))
  else
    line = string.format("time=%q level=%s msg=%q", time, level, msg)
  end
  local f = io.open(log_file, "a")
  if f then
    f:write(line, "\n")
    f:close()
  end
end

local function command(name, synopsis, summary, defs, operands, argv)
  return options.command({ name = "oci " .. name, synopsis = { synopsis }, summary = summary, options = defs,
                           operands = operands }, argv)
end

local function print_json(value)
  print((cjson.encode(value):gsub("\\/", "/")))
end

function commands.create(argv)
  local opts, ids = command("create", "[--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] ID",
    "set up a container of a bundle, its process waiting for start", {
      { "bundle", short = "b", value = "DIR", help = "the bundle: config.json and the root (default: .)" },
      { "pid-file", value = "FILE", help = "write the container's init's pid to FILE" },
      { "console-socket", value = "SOCKET", help = "send the terminal's master to this unix socket (SCM_RIGHTS)" },
      { "no-pivot", help = "accepted; lbox always uses pivot_root" },
      { "no-new-keyring", help = "keep the caller's session keyring" },
      { "preserve-fds", value = "N", help = "only 0: no descriptor besides stdio is passed on" },
    }, { 1, 1 }, argv)
  if not opts then return 0 end
  if opts["preserve-fds"] and opts["preserve-fds"] ~= "0" then
    errors.raise("--preserve-fds: lbox passes no descriptor but stdio to a container", 1)
  end
  oci.create { id = ids[1], bundle = opts.bundle, pid_file = opts["pid-file"],
               console_socket = opts["console-socket"], no_new_keyring = opts["no-new-keyring"] }
  return 0
end

function commands.start(argv)
  local opts, ids = command("start", "ID", "let a created container run its process", {}, { 1, 1 }, argv)
  if not opts then return 0 end
  oci.start(ids[1])
  return 0
end

function commands.state(argv)
  local opts, ids = command("state", "ID", "the runtime-spec state of a container, as JSON", {}, { 1, 1 }, argv)
  if not opts then return 0 end
  print(oci.state_json(oci.find(ids[1])))
  return 0
end

function commands.kill(argv)
  local opts, args = command("kill", "[--all] ID [SIGNAL]", "send a signal (default TERM) to a container's init",
    { { "all", short = "a", help = "to every process of the container" } }, { 1, 2 }, argv)
  if not opts then return 0 end
  oci.kill(args[1], oci.signal(args[2]), opts.all)
  return 0
end

function commands.delete(argv)
  local opts, ids = command("delete", "[--force] ID", "remove a stopped (or created) container, and every trace",
    { { "force", short = "f", help = "kill it first if it runs" } }, { 1, 1 }, argv)
  if not opts then return 0 end
  oci.delete(ids[1], opts.force)
  return 0
end

function commands.run(argv)
  local opts, ids = command("run", "[--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] [--detach] ID",
    "create and start a container; in the foreground, exit as its process did", {
      { "bundle", short = "b", value = "DIR", help = "the bundle: config.json and the root (default: .)" },
      { "pid-file", value = "FILE", help = "write the container's init's pid to FILE" },
      { "console-socket", value = "SOCKET", help = "send the terminal's master to this unix socket (SCM_RIGHTS)" },
      { "detach", short = "d", help = "start it and exit; it lives on" },
      { "no-pivot", help = "accepted; lbox always uses pivot_root" },
      { "no-new-keyring", help = "keep the caller's session keyring" },
    }, { 1, 1 }, argv)
  if not opts then return 0 end
  local create = { id = ids[1], bundle = opts.bundle, pid_file = opts["pid-file"],
                   console_socket = opts["console-socket"], no_new_keyring = opts["no-new-keyring"] }
  if opts.detach then
    create.started = true
    oci.create(create)
    return 0
  end
  return oci.run(create)
end

local function exec_options(opts, args)
  local argv = table.move(args, 2, #args, 1, {})
  local exec = { env = {}, cwd = opts.cwd, tty = opts.tty, user = opts.user }
  if opts.process then
    local text = fs.read_file(opts.process) or errors.raise("--process: cannot read " .. opts.process, 1)
    local ok, process = pcall(cjson.decode, text)
    if not ok or type(process) ~= "table" then errors.raise("--process: " .. opts.process .. " is not a JSON object", 1) end
    argv = process.args or {}
    exec.replace_env = process.env ~= nil
    for _, item in ipairs(process.env or {}) do
      local name, value = tostring(item):match("^([^=]+)=(.*)$")
      if name then exec.env[name] = value end
    end
    exec.cwd = exec.cwd or process.cwd
    exec.tty = exec.tty or process.terminal == true
    if type(process.user) == "table" then
      exec.user = exec.user or string.format("%d:%d", math.tointeger(process.user.uid or 0) or 0,
                                             math.tointeger(process.user.gid or 0) or 0)
    end
  end
  for _, item in ipairs(opts.env or {}) do
    local name, value = item:match("^([^=]+)=(.*)$")
    if not name then errors.raise(string.format("--env %q: NAME=VALUE expected", item), 1) end
    exec.env[name] = value
  end
  if exec.user then
    local user, why = users.parse(exec.user)
    if not user then errors.raise("--user: " .. why, 1) end
  end
  if exec.cwd and exec.cwd:sub(1, 1) ~= "/" then errors.raise("--cwd: an absolute path expected", 1) end
  if #argv == 0 then errors.raise("exec: a command is required (arguments or --process)", 1) end
  return argv, exec
end

function commands.exec(argv)
  local opts, args = command("exec", "[OPTIONS] ID [COMMAND [ARG...]]", "run a process in a running container", {
    { "process", short = "p", value = "FILE", help = "the process, as config.json's process (JSON)" },
    { "tty", short = "t", help = "on a pseudo-terminal of its own" },
    { "detach", short = "d", help = "start it and exit; it lives on under a supervisor" },
    { "pid-file", value = "FILE", help = "with --detach: the pid of the process's supervisor" },
    { "cwd", value = "DIR", help = "its working directory" },
    { "env", short = "e", value = "NAME=VALUE", list = true, help = "add to its environment" },
    { "user", short = "u", value = "UID[:GID]", help = "run it as this user" },
    { "console-socket", value = "SOCKET", help = "refused: lbox relays an exec's terminal itself" },
  }, { 1 }, argv)
  if not opts then return 0 end
  if opts["console-socket"] then errors.raise("exec --console-socket is not supported by lbox", 1) end
  local command_argv, exec = exec_options(opts, args)
  oci.find(args[1])
  if not opts.detach then return oci.exec(args[1], command_argv, exec).exit_code end
  local pid = assert(core.clone(0))
  if pid == 0 then
    core.setsid()
    local ok, status = pcall(oci.exec, args[1], command_argv, exec)
    core._exit(ok and status.exit_code or 1)
  end
  if opts["pid-file"] then
    fs.write_file(opts["pid-file"] .. ".tmp", tostring(pid))
    os.rename(opts["pid-file"] .. ".tmp", opts["pid-file"])
  end
  return 0
end

function commands.ps(argv)
  local opts, args = command("ps", "[--format table|json] ID", "the processes of a container",
    { { "format", short = "f", value = "table|json", help = "json: a list of pids" } }, { 1, 1 }, argv)
  if not opts then return 0 end
  local pids = oci.processes(oci.find(args[1]))
  if opts.format == "json" then
    print(#pids == 0 and "[]" or cjson.encode(pids))
    return 0
  elseif opts.format and opts.format ~= "table" then
    errors.raise(string.format("--format %q: table or json", opts.format), 1)
  end
  print(string.format("%-8s %s", "PID", "CMD"))
  for _, pid in ipairs(pids) do
    local cmdline = (fs.read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z$", ""):gsub("%z", " ")
    print(string.format("%-8d %s", pid, cmdline))
  end
  return 0
end

function commands.list(argv)
  local opts = command("list", "[--format table|json] [--quiet]", "the containers under --root", {
    { "format", short = "f", value = "table|json", help = "json: their states" },
    { "quiet", short = "q", help = "ids only" },
  }, { 0, 0 }, argv)
  if not opts then return 0 end
  local list = oci.list()
  if opts.quiet then
    for _, record in ipairs(list) do print(record.id) end
  elseif opts.format == "json" then
    local states = {}
    for i, record in ipairs(list) do
      states[i] = oci.public_state(record)
      states[i].pid = states[i].pid or 0
      states[i].created = record.created
    end
    print(#states == 0 and "[]" or (cjson.encode(states):gsub("\\/", "/")))
  else
    print(string.format("%-24s %-8s %-8s %-40s %-20s %s", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
    for _, record in ipairs(list) do
      local state = oci.public_state(record)
      print(string.format("%-24s %-8d %-8s %-40s %-20s %s", record.id, state.pid or 0, state.status,
        record.bundle or "", record.created or "", record.owner or "root"))
    end
  end
  return 0
end

function commands.pause(argv)
  local opts, ids = command("pause", "ID", "freeze every process of a container", {}, { 1, 1 }, argv)
  if not opts then return 0 end
  oci.pause(ids[1], true)
  return 0
end

function commands.resume(argv)
  local opts, ids = command("resume", "ID", "thaw a paused container", {}, { 1, 1 }, argv)
  if not opts then return 0 end
  oci.pause(ids[1], false)
  return 0
end

function commands.update(argv)
  local opts, ids = command("update", "[--resources FILE] [--memory N] [--cpu-quota N] ... ID",
    "change the resource limits of a running container", {
      { "resources", short = "r", value = "FILE", help = "linux.resources of the runtime-spec, as JSON (- for stdin)" },
      { "memory", value = "BYTES", help = "memory limit" },
      { "memory-swap", value = "BYTES", help = "memory plus swap limit (-1: unlimited)" },
      { "cpu-shares", value = "N", help = "relative CPU weight" },
      { "cpu-quota", value = "USEC", help = "CPU time per period" },
      { "cpu-period", value = "USEC", help = "the period of --cpu-quota (default 100000)" },
      { "cpuset-cpus", value = "LIST", help = "CPUs allowed: 0-1,3" },
      { "cpuset-mems", value = "LIST", help = "memory nodes allowed" },
      { "pids-limit", value = "N", help = "maximum number of processes" },
    }, { 1, 1 }, argv)
  if not opts then return 0 end
  local resources = {}
  if opts.resources then
    local text = opts.resources == "-" and io.read("a") or fs.read_file(opts.resources)
    if not text then errors.raise("--resources: cannot read " .. opts.resources, 1) end
    local ok, decoded = pcall(cjson.decode, text)
    if not ok then errors.raise("--resources: not JSON: " .. tostring(decoded), 1) end
    resources = decoded
  end
  local function number(flag)
    local value = opts[flag]
    if value == nil then return nil end
    local n = math.tointeger(tonumber(value))
    if not n then errors.raise(string.format("--%s %q: a whole number expected", flag, value), 1) end
    return n
  end
  if type(resources) == "table" then
    resources.memory = resources.memory or {}
    resources.cpu = resources.cpu or {}
    resources.pids = resources.pids or {}
    resources.memory.limit = number("memory") or resources.memory.limit
    resources.memory.swap = number("memory-swap") or resources.memory.swap
    resources.cpu.shares = number("cpu-shares") or resources.cpu.shares
    resources.cpu.quota = number("cpu-quota") or resources.cpu.quota
    resources.cpu.period = number("cpu-period") or resources.cpu.period
    resources.cpu.cpus = opts["cpuset-cpus"] or resources.cpu.cpus
    resources.cpu.mems = opts["cpuset-mems"] or resources.cpu.mems
    resources.pids.limit = number("pids-limit") or resources.pids.limit
  end
  oci.update_limits(ids[1], oci_config.limits(resources))
  return 0
end

function commands.features(argv)
  local opts = command("features", "", "what this runtime supports, as JSON", {}, { 0, 0 }, argv)
  if not opts then return 0 end
  local caps = require("lbox.capabilities").all()
  print_json {
    ociVersionMin = "1.0.0", ociVersionMax = oci_config.OCI_VERSION,
    hooks = { "prestart", "createRuntime", "poststart", "poststop" },
    mountOptions = { "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
      "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid",
      "private", "rbind", "relatime", "remount", "ro", "rprivate", "rro", "rshared", "rslave",
      "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable" },
    linux = {
      namespaces = { "cgroup", "ipc", "mount", "network", "pid", "uts" },
      capabilities = caps,
      cgroup = { v1 = true, v2 = true, systemd = false, systemdUser = false },
      seccomp = { enabled = true },
      apparmor = { enabled = false }, selinux = { enabled = false },
    },
    annotations = { ["org.lbox.version"] = require("lbox").version },
  }
  return 0
end

function commands.spec(argv)
  local opts = command("spec", "[--bundle DIR]", "write a default config.json (sh in ./rootfs)", {
    { "bundle", short = "b", value = "DIR", help = "where to write it (default: .)" },
    { "rootless", help = "refused: lbox runs as root" },
  }, { 0, 0 }, argv)
  if not opts then return 0 end
  if opts.rootless then errors.raise("spec --rootless: lbox runs containers as root only", 1) end
  local path = (opts.bundle or ".") .. "/config.json"
  if fs.exists(path) then errors.raise("File " .. path .. " exists. Remove it first", 1) end
  fs.write_file(path, (cjson.encode(oci_config.default()):gsub("\\/", "/")) .. "\n")
  return 0
end

local function main(...)
  local opts, args = options.command(GLOBAL, { ... })
  if not opts then return 0 end
  log_file, log_format, debug_log = opts.log, opts["log-format"] or "text", opts.debug
  if log_format ~= "text" and log_format ~= "json" then
    log_format = "text"
    errors.raise(string.format("--log-format %q: text or json", opts["log-format"]), 1)
  end
  if opts["systemd-cgroup"] then
    errors.raise("--systemd-cgroup is not supported: lbox manages its cgroups itself, without systemd", 1)
  end
  if opts.rootless and opts.rootless ~= "false" and opts.rootless ~= "auto" then
    errors.raise("--rootless: lbox runs containers as root only", 1)
  end
  oci.root = opts.root or oci.DEFAULT_ROOT
  local name = args[1]
  if not commands[name] then errors.raise(string.format("unknown command %q (see lbox oci --help)", name), 1) end
  if debug_log then log("debug", "lbox oci " .. table.concat({ ... }, " ")) end
  return commands[name](table.move(args, 2, #args, 1, {}))
end

local results = table.pack(xpcall(main, function(e)
  if errors.is_user_error(e) then return e end
  -- a table is not lbox's to report (the manual's generator raises one)
  if type(e) == "table" then return { rethrow = e } end
  return { message = "internal error: " .. debug.traceback(tostring(e), 2), code = 1 }
end, ...))
if results[1] then return results[2] end
if results[2].rethrow then error(results[2].rethrow, 0) end
local message = results[2].message
log("error", message:match("^[^\n]*"))
io.stderr:write("lbox-oci: error: ", message, "\n")
return 1

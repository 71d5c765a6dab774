--- What real workloads ask of a container beyond its root and limits, as
-- docker's flags give it: resource limits (ulimits), tmpfs mounts with
-- options, the size of /dev/shm, extra /etc/hosts entries, DNS servers.
-- The parsers take what a user types and return the spec's value or nil and
-- a message; `check` validates the spec's fields (for library users too).
local fs = require "lbox.fs"
local units = require "lbox.units"

local M = {}

--- docker's names for setrlimit's resources (lbox.core.setrlimit takes them).
M.ULIMIT_NAMES = { "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                   "nproc", "rss", "rtprio", "rttime", "sigpending", "stack" }
local KNOWN_ULIMITS = {}
for _, name in ipairs(M.ULIMIT_NAMES) do KNOWN_ULIMITS[name] = true end

-- Open files, unless the spec says otherwise: what docker's packages have
-- long given containers (dockerd's LimitNOFILE), bounded by fs.nr_open.
M.DEFAULT_NOFILE = 1048576
M.NR_OPEN = "/proc/sys/fs/nr_open"

-- /dev/shm unless --shm-size: docker's 64 MiB.
M.DEFAULT_SHM_SIZE = 64 * 1024 * 1024

local function limit_value(text)
  if text == "unlimited" or text == "-1" then return -1 end
  local n = text:match("^%d+$") and math.tointeger(tonumber(text))
  return n
end

--- "nofile=1024:4096", "core=0", "nproc=unlimited" -> name, { soft, hard }
function M.parse_ulimit(text)
  local name, soft_text, hard_text = text:match("^([%a_]+)=([^:]+):?([^:]*)$")
  if not name then return nil, string.format("%q: use NAME=SOFT[:HARD]", text) end
  if not KNOWN_ULIMITS[name] then
    return nil, string.format("%q: unknown limit %q (%s)", text, name, table.concat(M.ULIMIT_NAMES, ", "))
  end
  local soft = limit_value(soft_text)
  local hard = hard_text == "" and soft or limit_value(hard_text)
  if not soft or not hard then
    return nil, string.format("%q: limits are whole numbers, -1 or unlimited", text)
  end
  return name, { soft, hard }
end

-- tmpfs options as docker takes them: flags, and data passed to the kernel
local TMPFS_FLAGS = { ro = "rdonly", rw = false, noexec = "noexec", exec = false, nosuid = "nosuid", suid = false,
                      nodev = "nodev", dev = false }
local TMPFS_DATA = { size = true, mode = true, uid = true, gid = true, nr_inodes = true, nr_blocks = true }

--- "/run:size=10m,noexec" -> { target, options = "size=10m,noexec" }
function M.parse_tmpfs(text)
  local target, options = text:match("^([^:]+):?(.*)$")
  if not target or target:sub(1, 1) ~= "/" then
    return nil, string.format("%q: use /PATH[:OPTIONS], an absolute path in the container", text)
  end
  return { target = target, options = options }
end

--- The mount of a tmpfs entry: { target, flags = { rdonly = true, ... },
-- data = "mode=1777,size=..." } | nil, message. docker's defaults: noexec,
-- nosuid, nodev, mode 1777; nodev always, as every mount of lbox's.
function M.tmpfs_mount(entry)
  local flags = { noexec = true, nosuid = true, nodev = true }
  local data = { mode = "1777" }
  local order = { "mode" }
  for option in (entry.options or ""):gmatch("[^,]+") do
    local key, value = option:match("^([%w_]+)=(.+)$")
    if TMPFS_FLAGS[option] ~= nil then
      local positive = ({ rw = "rdonly", exec = "noexec", suid = "nosuid" })[option]
      if positive then flags[positive] = nil elseif TMPFS_FLAGS[option] then flags[TMPFS_FLAGS[option]] = true end
    elseif key and TMPFS_DATA[key] then
      if key == "size" and not value:match("%%$") then
        local bytes, msg = units.size(value)
        if not bytes then return nil, msg end
        value = tostring(bytes)
      elseif key == "mode" and not value:match("^[0-7]+$") then
        return nil, string.format("mode=%s: an octal mode expected", value)
      elseif key ~= "size" and key ~= "mode" and not value:match("^%d+[kmg]?$") then
        return nil, string.format("%s=%s: a number expected", key, value)
      end
      if not data[key] then order[#order + 1] = key end
      data[key] = value
    else
      return nil, string.format("unknown tmpfs option %q (ro, rw, exec, noexec, suid, nosuid, nodev, "
        .. "size, mode, uid, gid, nr_inodes)", option)
    end
  end
  local parts = {}
  for _, key in ipairs(order) do parts[#parts + 1] = key .. "=" .. data[key] end
  return { target = entry.target, flags = flags, data = table.concat(parts, ",") }
end

local function ipv4(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, n in ipairs { a, b, c, d } do if #n > 3 or tonumber(n) > 255 then return false end end
  return true
end

local function ipv6(text)
  if not text:match("^[%x:]+$") or not text:find(":.*:") or #text > 39 then return false end
  local _, doubles = text:gsub("::", "")
  local groups = 0
  for group in text:gmatch("[^:]+") do
    if #group > 4 then return false end
    groups = groups + 1
  end
  return (doubles == 0 and groups == 8) or (doubles == 1 and groups < 8)
end

--- Is `text` an IPv4 or IPv6 address?
function M.is_ip(text)
  return type(text) == "string" and (ipv4(text) or ipv6(text))
end

local function valid_hostname(name)
  return type(name) == "string" and #name <= 253 and name:match("^[%w][%w.-]*$") ~= nil
end

--- "db:10.0.0.5", "v6:[::1]" -> { name, ip }
function M.parse_host(text)
  local name, ip = text:match("^([^:=]+)[:=](.+)$")
  if ip then ip = ip:match("^%[(.*)%]$") or ip end
  if ip == "host-gateway" then
    return nil, string.format("%q: host-gateway needs a bridge network, which lbox does not make", text)
  end
  if not name or not valid_hostname(name) or not M.is_ip(ip) then
    return nil, string.format("%q: use NAME:IP, with an IPv4 or IPv6 address", text)
  end
  return { name = name, ip = ip }
end

--- Check the workload fields of `spec` into `out`; `bad(field, fmt, ...)` raises.
function M.check(spec, out, bad)
  out.ulimits = {}
  for name, limit in pairs(spec.ulimits or {}) do
    if not KNOWN_ULIMITS[name] then bad("ulimits", "unknown limit %q", tostring(name)) end
    local soft, hard = type(limit) == "table" and limit[1], type(limit) == "table" and limit[2]
    if math.type(soft) ~= "integer" or math.type(hard) ~= "integer" or soft < -1 or hard < -1 then
      bad("ulimits", "%s: { soft, hard } whole numbers or -1 (unlimited) expected", name)
    end
    if hard ~= -1 and (soft == -1 or soft > hard) then
      bad("ulimits", "%s: the soft limit %s is above the hard limit %d", name, soft == -1 and "unlimited" or soft, hard)
    end
    out.ulimits[name] = { soft, hard }
  end

  out.shm_size = spec.shm_size or M.DEFAULT_SHM_SIZE
  if math.type(out.shm_size) ~= "integer" or out.shm_size <= 0 then
    bad("shm_size", "%s: a size in bytes above zero expected", tostring(out.shm_size))
  end

  out.extra_hosts = {}
  for i, host in ipairs(spec.extra_hosts or {}) do
    if type(host) ~= "table" or not valid_hostname(host.name) or not M.is_ip(host.ip) then
      bad("extra_hosts", "entry %d: { name = HOSTNAME, ip = ADDRESS } expected", i)
    end
    out.extra_hosts[i] = { name = host.name, ip = host.ip }
  end
  out.dns = {}
  for i, server in ipairs(spec.dns or {}) do
    if not M.is_ip(server) then bad("dns", "%q is not an IP address", tostring(server)) end
    out.dns[i] = server
  end
  out.init = spec.init and true or false
end

--- The host's part of the plan (lbox.spec.plan): the open files a spec
-- that sets none gets, docker's default bounded by this host's fs.nr_open.
-- @return the ulimits the init and exec set: name -> { soft, hard,
--   default = true for the one lbox chose }, plain data for state.json
function M.plan_ulimits(ulimits)
  local planned = {}
  for name, limit in pairs(ulimits) do planned[name] = { soft = limit[1], hard = limit[2] } end
  if not planned.nofile then
    local nr_open = tonumber((fs.read_file(M.NR_OPEN) or ""):match("%d+") or "")
    local n = math.min(M.DEFAULT_NOFILE, nr_open or M.DEFAULT_NOFILE)
    planned.nofile = { soft = n, hard = n, default = true }
  end
  return planned
end

--- /etc/hosts of a container named `hostname`, with `extra` entries.
function M.hosts(hostname, extra)
  local lines = { "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback" }
  for _, host in ipairs(extra) do lines[#lines + 1] = host.ip .. "\t" .. host.name end
  lines[#lines + 1] = "127.0.1.1\t" .. hostname
  return table.concat(lines, "\n") .. "\n"
end

--- /etc/resolv.conf from the host's `text`: as it is, or with its
-- nameservers replaced by `servers` (its search and options kept, as docker).
function M.resolv_conf(text, servers)
  if #servers == 0 then return text end
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if not line:match("^%s*nameserver%s") then lines[#lines + 1] = line end
  end
  for _, server in ipairs(servers) do lines[#lines + 1] = "nameserver " .. server end
  return table.concat(lines, "\n") .. "\n"
end

return M

--- Capabilities by docker's names: the default set, --cap-add/--cap-drop
-- as docker combines them, and the numbers the kernel knows them by.
local fs = require "lbox.fs"

local M = {}

-- capabilities(7), by number
M.NAMES = {
  [0] = "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}
M.NUMBERS = {}
for number = 0, #M.NAMES do M.NUMBERS[M.NAMES[number]] = number end

-- docker's default set but CAP_MKNOD, as podman: without device rules a
-- node made on a volume would open the host's disks.
M.DEFAULT = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
  "CAP_AUDIT_WRITE",
}

--- Every capability this kernel has, by name.
function M.all()
  local last = tonumber(fs.read_file("/proc/sys/kernel/cap_last_cap") or "") or #M.NAMES
  local names = {}
  for number = 0, math.min(last, #M.NAMES) do names[#names + 1] = M.NAMES[number] end
  return names
end

--- `name` as docker accepts it ("net_admin", "CAP_NET_ADMIN", "ALL")
-- in its canonical form | nil, reason.
function M.canonical(name)
  if type(name) ~= "string" then return nil, "a capability name expected" end
  local upper = name:upper()
  if upper == "ALL" then return "ALL" end
  if upper:sub(1, 4) ~= "CAP_" then upper = "CAP_" .. upper end
  if not M.NUMBERS[upper] then return nil, string.format("unknown capability %q", name) end
  return upper
end

--- The capabilities a container gets: docker's rules (moby's
-- TweakCapabilities). With ALL added, every capability but the dropped;
-- with ALL dropped, only the added; else the default minus the dropped,
-- plus the added. @return sorted list of names | nil, reason
function M.combine(add, drop)
  local function canonical_set(list)
    local set, all = {}, false
    for _, name in ipairs(list or {}) do
      local canon, msg = M.canonical(name)
      if not canon then return nil, msg end
      if canon == "ALL" then all = true else set[canon] = true end
    end
    return set, all
  end
  local added, add_all = canonical_set(add)
  if not added then return nil, add_all end
  local dropped, drop_all = canonical_set(drop)
  if not dropped then return nil, drop_all end
  local result = {}
  if add_all then
    for _, name in ipairs(M.all()) do if not dropped[name] then result[name] = true end end
  else
    if not drop_all then
      for _, name in ipairs(M.DEFAULT) do if not dropped[name] then result[name] = true end end
    end
    for name in pairs(added) do result[name] = true end
  end
  local names = {}
  for name in pairs(result) do names[#names + 1] = name end
  table.sort(names, function(a, b) return M.NUMBERS[a] < M.NUMBERS[b] end)
  return names
end

--- The numbers of a list of names.
function M.numbers(names)
  local numbers = {}
  for i, name in ipairs(names) do numbers[i] = M.NUMBERS[name] end
  return numbers
end

return M

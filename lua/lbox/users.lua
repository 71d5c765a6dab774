--- Users and groups as a container's /etc/passwd and /etc/group know them,
-- resolved the way docker does for `--user USER[:GROUP]`.
local M = {}

-- (uid_t)-1 means "unchanged" to the kernel
local MAX_ID = 4294967294

-- The colon-separated records of a passwd or group file's text.
local function records(text)
  local list = {}
  for line in (text or ""):gmatch("[^\n]+") do
    if not line:match("^%s*#") then
      local fields = {}
      for field in (line .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = field end
      list[#list + 1] = fields
    end
  end
  return list
end

-- The record whose name (field 1) or number (field 3) is `ref`.
local function find(list, ref)
  local number = ref:match("^%d+$") and tonumber(ref)
  for _, r in ipairs(list) do
    if (number and tonumber(r[3]) == number) or (not number and r[1] == ref) then return r end
  end
end

--- Is `text` a valid USER[:GROUP] (names or numbers)?
-- @return user, group | nil, message
function M.parse(text)
  local user, group = tostring(text):match("^([%w_][%w_.-]*):?([%w_.-]*)$")
  if not user then return nil, string.format("%q: use USER[:GROUP], names or numbers", tostring(text)) end
  return user, group ~= "" and group or nil
end

--- Resolve `user` and optional `group` (names or numbers) against the text
-- of /etc/passwd and /etc/group. A number needs no entry; a name does.
-- Without a group, the user's primary group (0 when it has no entry) and
-- every group that lists it by name.
-- @return { uid, gid, groups = { gid... }, home } | nil, message
function M.resolve(user, group, passwd_text, group_text)
  local entry = find(records(passwd_text), user)
  local uid = entry and tonumber(entry[3]) or user:match("^%d+$") and tonumber(user)
  if not uid then return nil, string.format("unable to find user %s: no matching entries in /etc/passwd", user) end
  local groups = records(group_text)
  local gid = entry and tonumber(entry[4]) or 0
  local supplementary = {}
  if group then
    local g = find(groups, group)
    gid = g and tonumber(g[3]) or group:match("^%d+$") and tonumber(group)
    if not gid then return nil, string.format("unable to find group %s: no matching entries in /etc/group", group) end
  elseif entry then
    for _, g in ipairs(groups) do
      for member in (g[4] or ""):gmatch("[^,%s]+") do
        if member == entry[1] and tonumber(g[3]) then supplementary[#supplementary + 1] = tonumber(g[3]) end
      end
    end
  end
  if uid > MAX_ID or gid > MAX_ID then return nil, string.format("%s: ids go up to %d", user, MAX_ID) end
  table.insert(supplementary, 1, gid)
  local home = entry and entry[6] ~= "" and entry[6] or (uid == 0 and "/root" or "/")
  return { uid = math.tointeger(uid), gid = math.tointeger(gid), groups = supplementary, home = home }
end

--- Is `list` a list of group ids (numbers), at most 32 (with the user's
-- own, setgroups takes 64)? @return a copy | nil, message
function M.check_groups(list)
  if type(list) ~= "table" or #list > 32 then return nil, "must be a list of at most 32 group ids" end
  local copy = {}
  for i, gid in ipairs(list) do
    if math.type(gid) ~= "integer" or gid < 0 or gid > MAX_ID then
      return nil, string.format("%s is not a group id (0 to %d)", tostring(gid), MAX_ID)
    end
    copy[i] = gid
  end
  return copy
end

return M

--- Reading tar archives (ustar, GNU long names, pax), to check an image
-- before anything of it is written: extraction is left to GNU tar, and only
-- of an archive this module accepted.
local M = {}

local BLOCK = 512

local TYPES = {
  ["0"] = "file", ["\0"] = "file", ["7"] = "file", ["1"] = "hardlink", ["2"] = "symlink",
  ["3"] = "char", ["4"] = "block", ["5"] = "directory", ["6"] = "fifo",
}

local function text(block, offset, length)
  return block:sub(offset + 1, offset + length):match("^[^%z]*")
end

local function number(block, offset, length)
  local first = block:byte(offset + 1)
  if first and first >= 0x80 then -- GNU base-256, for sizes past 8 GiB
    local value = first & 0x7f
    for i = offset + 2, offset + length do value = value * 256 + block:byte(i) end
    return value
  end
  local digits = text(block, offset, length):match("^%s*([0-7]*)%s*$")
  return digits and tonumber(digits ~= "" and digits or "0", 8)
end

local function checksum_ok(block)
  local stored = number(block, 148, 8)
  local sum = 0
  for i = 1, BLOCK do
    sum = sum + ((i > 148 and i <= 156) and 32 or block:byte(i))
  end
  return stored == sum
end

local function pax_records(data)
  local records = {}
  local pos = 1
  while pos <= #data do
    local length, key = data:match("^(%d+) ([^=]+)=", pos)
    if not length then return nil end
    local record = data:sub(pos, pos + tonumber(length) - 1)
    local value = record:match("^%d+ [^=]+=(.*)\n$")
    if not value then return nil end
    records[key] = value
    pos = pos + tonumber(length)
  end
  return records
end

--- The entries of the archive in `file` (an open io file), in order.
-- @return list of { name, type, size, link, mode } | nil, message
function M.entries(file)
  local entries, pending = {}, {}
  while true do
    local header = file:read(BLOCK)
    if not header or #header < BLOCK then return nil, "truncated archive" end
    if not header:find("[^%z]") then return entries end -- end-of-archive block
    if not checksum_ok(header) then return nil, "corrupt archive (bad header checksum)" end
    local size = number(header, 124, 12)
    if not size then return nil, "corrupt archive (bad size)" end
    local flag = header:sub(157, 157)
    local data_blocks = (size + BLOCK - 1) // BLOCK
    local data
    if flag == "L" or flag == "K" or flag == "x" or flag == "g" then
      data = file:read(data_blocks * BLOCK)
      if not data or #data < data_blocks * BLOCK then return nil, "truncated archive" end
      data = data:sub(1, size)
      if flag == "L" then pending.name = data:match("^[^%z]*")
      elseif flag == "K" then pending.link = data:match("^[^%z]*")
      elseif flag == "x" then
        local records = pax_records(data)
        if not records then return nil, "corrupt archive (bad pax header)" end
        pending.name = records.path or pending.name
        pending.link = records.linkpath or pending.link
      end
    else
      local kind = TYPES[flag]
      if not kind then return nil, string.format("unsupported tar entry type %q", flag) end
      local prefix = text(header, 345, 155)
      local name = pending.name or (prefix ~= "" and prefix .. "/" or "") .. text(header, 0, 100)
      entries[#entries + 1] = { name = name, type = kind, size = size, mode = number(header, 100, 8),
                                link = pending.link or text(header, 157, 100) }
      pending = {}
      -- skip the data, checking it is all there
      if kind == "file" and size > 0 then
        local remaining = data_blocks * BLOCK
        while remaining > 0 do
          local chunk = file:read(math.min(remaining, 1 << 20))
          if not chunk or #chunk == 0 then return nil, "truncated archive" end
          remaining = remaining - #chunk
        end
      end
    end
  end
end

-- "a/./b/" -> "a/b"; nil when a ".." would climb above the start
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return table.concat(parts, "/")
end

--- Check archive entries for anything that would write outside the
-- directory they are extracted to. Device nodes pass, as docker's and
-- podman's imports: a container's mounts are nodev (lbox.mounts).
-- @return true | nil, message naming the entry
function M.check(entries)
  local symlinks = {}
  for _, e in ipairs(entries) do
    local function refuse(why)
      return nil, string.format("refusing %q: %s", e.name, why)
    end
    if e.name:sub(1, 1) == "/" then return refuse("absolute path") end
    if ("/" .. e.name .. "/"):find("/%.%./") then return refuse("path climbs out with ..") end
    local name = normalize(e.name)
    -- nothing may be written through a symlink the archive made
    local prefix = ""
    for part in name:gmatch("[^/]+") do
      prefix = prefix == "" and part or prefix .. "/" .. part
      if symlinks[prefix] and prefix ~= name then return refuse("path goes through the symlink " .. prefix) end
    end
    if e.type == "symlink" then
      local dir = name:match("^(.*)/[^/]*$") or ""
      -- absolute targets resolve inside the container's root; relative
      -- ones must stay inside the image
      if e.link:sub(1, 1) ~= "/" and not normalize(dir .. "/" .. e.link) then
        return refuse("symlink points out of the image: " .. e.link)
      end
      symlinks[name] = true
    end
    -- a later entry of the same name does not clear the mark: its
    -- extraction may fail (a hard link to nothing) and leave the symlink
    -- in place for the entries after it
    if e.type == "hardlink" then
      if e.link:sub(1, 1) == "/" or not normalize(e.link) or symlinks[normalize(e.link)] then
        return refuse("hard link to " .. e.link)
      end
    end
  end
  return true
end

return M

--- Parsing of the values users type: sizes, CPU counts and CPU lists.
-- Each parser returns the value, or nil and a message naming the problem.
local M = {}

local MULTIPLIERS = { b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 }

--- "100m", "1g", "512k", "1048576", "1.5g" -> bytes (integer).
function M.size(text)
  local number, unit = tostring(text):lower():match("^(%d+%.?%d*)([bkmgt]?)b?$")
  if not number then
    return nil, string.format("invalid size %q: use a positive number with an optional unit b, k, m, g", text)
  end
  local bytes = math.floor(tonumber(number) * MULTIPLIERS[unit ~= "" and unit or "b"])
  if bytes <= 0 then
    return nil, string.format("invalid size %q: must be greater than zero", text)
  end
  return bytes
end

--- `bytes` the way a user writes a size: "6m", "1g", "1536k", or "100b".
function M.format_size(bytes)
  for _, unit in ipairs { { "g", 1 << 30 }, { "m", 1 << 20 }, { "k", 1 << 10 } } do
    if bytes >= unit[2] and bytes % unit[2] == 0 then return string.format("%d%s", bytes // unit[2], unit[1]) end
  end
  return string.format("%db", bytes)
end

--- "1.5" -> 1.5; a positive decimal number.
function M.decimal(text)
  local value = tostring(text):match("^%d+%.?%d*$") and tonumber(text)
  if not value or value <= 0 then
    return nil, string.format("invalid number %q: use a positive decimal number", text)
  end
  return value
end

--- "42" -> 42; an integer within [min, max].
function M.integer(text, min, max)
  local value = tostring(text):match("^%-?%d+$") and math.tointeger(tonumber(text))
  if not value or value < min or value > max then
    return nil, string.format("invalid value %q: use a whole number from %d to %d", text, min, max)
  end
  return value
end

--- "0-2,4" -> {0, 1, 2, 4}, sorted and without repeats.
function M.cpu_list(text)
  local seen, list = {}, {}
  local function bad(why)
    return nil, string.format("invalid cpu list %q: %s", text, why)
  end
  if not tostring(text):match("^[%d,%-]+$") then
    return bad("use numbers and ranges like 0-2,4")
  end
  for item in (text .. ","):gmatch("([^,]*),") do
    local first, last = item:match("^(%d+)%-(%d+)$")
    if not first then first = item:match("^%d+$"); last = first end
    if not first then return bad(string.format("%q is not a number or a range", item)) end
    first, last = tonumber(first), tonumber(last)
    if first > last then return bad(string.format("range %q goes backwards", item)) end
    for n = first, last do
      if not seen[n] then seen[n] = true; list[#list + 1] = n end
    end
  end
  table.sort(list)
  return list
end

--- Read a kernel list file such as /sys/devices/system/cpu/online.
function M.read_list_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("l")
  f:close()
  return text and M.cpu_list(text)
end

return M

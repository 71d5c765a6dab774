--- Serialization of plain data (strings, numbers, booleans, tables) for the
-- reports a forked child sends lbox (lbox.inside): length-prefixed, so any
-- bytes and any size arrive intact.
local M = {}

local pack, unpack = string.pack, string.unpack

local function encode_value(value, out, depth)
  local kind = type(value)
  if kind == "string" then
    out[#out + 1] = "s" .. pack("<s4", value)
  elseif kind == "number" then
    if math.type(value) == "integer" then
      out[#out + 1] = "i" .. pack("<j", value)
    else
      out[#out + 1] = "n" .. pack("<n", value)
    end
  elseif kind == "boolean" then
    out[#out + 1] = value and "T" or "F"
  elseif kind == "table" then
    if depth > 32 then error("wire: table nested too deeply", 0) end
    out[#out + 1] = "{"
    for k, v in pairs(value) do
      encode_value(k, out, depth + 1)
      encode_value(v, out, depth + 1)
    end
    out[#out + 1] = "}"
  else
    error("wire: cannot send a " .. kind, 0)
  end
end

--- Encode `value` into a string.
function M.encode(value)
  local out = {}
  encode_value(value, out, 0)
  return table.concat(out)
end

local function decode_value(data, pos)
  local tag = data:sub(pos, pos)
  pos = pos + 1
  if tag == "s" then
    return unpack("<s4", data, pos)
  elseif tag == "i" then
    return unpack("<j", data, pos)
  elseif tag == "n" then
    return unpack("<n", data, pos)
  elseif tag == "T" then
    return true, pos
  elseif tag == "F" then
    return false, pos
  elseif tag == "{" then
    local t = {}
    while data:sub(pos, pos) ~= "}" do
      if pos > #data then error("wire: truncated message", 0) end
      local k, v
      k, pos = decode_value(data, pos)
      v, pos = decode_value(data, pos)
      t[k] = v
    end
    return t, pos + 1
  end
  error("wire: " .. (tag == "" and "truncated message" or "bad tag " .. string.format("%q", tag)), 0)
end

--- Decode a string made by `encode`.
-- @return value | nil, message
function M.decode(data)
  local ok, value, pos = pcall(decode_value, data, 1)
  if not ok then
    -- string.unpack's own complaints all mean the data ended early
    return nil, value:find("^wire: ") and value or "wire: truncated message"
  end
  if pos ~= #data + 1 then
    return nil, "wire: trailing bytes"
  end
  return value
end

return M

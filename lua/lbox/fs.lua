--- Small filesystem helpers on top of LuaFileSystem.
local cjson = require "cjson"
local errors = require "lbox.errors"
local lfs = require "lfs"

local M = {}

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

--- The JSON object in file `path`, its whole numbers as integers (cjson
-- reads every number as a float: pids, exit codes) | nil when the file is
-- missing or holds no object.
function M.read_json(path)
  local ok, object = pcall(cjson.decode, M.read_file(path) or "")
  if not ok or type(object) ~= "table" then return nil end
  for key, value in pairs(object) do
    if math.type(value) == "float" and math.tointeger(value) then object[key] = math.tointeger(value) end
  end
  return object
end

--- Write `data` to `path` (replacing it); raises a user error on failure.
function M.write_file(path, data)
  local f, msg = io.open(path, "wb")
  local ok = f and f:write(data)
  if f then ok, msg = f:close() end
  if not ok then errors.raise("cannot write " .. path .. ": " .. tostring(msg)) end
end

--- "file", "directory", "link", ... of `path` itself (links not followed) | nil
function M.kind(path)
  return lfs.symlinkattributes(path, "mode")
end

function M.exists(path)
  return lfs.attributes(path, "mode") ~= nil
end

--- Iterate over the names in directory `path` (none if it does not exist),
-- without "." and "..".
function M.dir(path)
  local ok, iter, state = pcall(lfs.dir, path)
  if not ok then return function() return nil end end
  return function()
    local name
    repeat name = iter(state) until name ~= "." and name ~= ".."
    return name
  end
end

--- mkdir -p. @return true | nil, message
function M.mkdir_p(path)
  local prefix = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    prefix = prefix .. "/" .. part
    if not M.exists(prefix) then
      local ok, msg = lfs.mkdir(prefix)
      if not ok and not M.exists(prefix) then return nil, prefix .. ": " .. msg end
    end
  end
  return true
end

--- Remove `path` and everything below it, never following a symlink and
-- never entering another filesystem: a mount left inside (a volume) is
-- reported, and its data kept.
-- @return true | nil, message
function M.remove_tree(path)
  local top = lfs.symlinkattributes(path)
  if not top then return true end
  local function remove(p, dev)
    local attr = lfs.symlinkattributes(p)
    if not attr then return true end
    if attr.mode == "directory" then
      if attr.dev ~= dev then return nil, p .. " is a mount point: not removed" end
      for name in M.dir(p) do
        local ok, msg = remove(p .. "/" .. name, dev)
        if not ok then return nil, msg end
      end
      local ok, msg = lfs.rmdir(p)
      if not ok then return nil, p .. ": " .. msg end
      return true
    end
    local ok, msg = os.remove(p)
    if not ok then return nil, msg end
    return true
  end
  return remove(path, top.dev)
end

--- `n` random bytes as hex digits.
function M.random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

--- Quote `s` for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Run a shell command built from `template` with each argument quoted;
-- raises a user error "what: ..." if it fails.
function M.run(what, template, ...)
  local args = table.pack(...)
  for i = 1, args.n do args[i] = M.quote(args[i]) end
  local command = string.format(template, table.unpack(args, 1, args.n))
  local ok, how, code = os.execute(command .. " 2>/dev/null")
  if not ok then errors.raise(string.format("%s (%s %s)", what, how, tostring(code))) end
end

--- The path of `program` in PATH | nil
function M.find_program(program)
  for dir in (os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"):gmatch("[^:]+") do
    local path = dir .. "/" .. program
    if lfs.attributes(path, "mode") == "file" then return path end
  end
  return nil
end

return M

--- Running the container's command: PATH lookup as a shell does it
-- (POSIX execvp), with docker's exit codes when it fails.
local core = require "lbox.core"
local errors = require "lbox.errors"
local lfs = require "lfs"

local M = {}

M.DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

local function env_list(env)
  local list = {}
  for name, value in pairs(env) do list[#list + 1] = name .. "=" .. value end
  table.sort(list)
  return list
end

local function fail(file, errno, msg)
  if errno == core.ENOENT or errno == core.ENOTDIR then
    errors.raise(string.format("exec %q: no such file or directory", file), errors.codes.not_found)
  elseif errno == core.EACCES or errno == core.EPERM then
    errors.raise(string.format("exec %q: permission denied", file), errors.codes.not_executable)
  end
  errors.raise(string.format("exec %q: %s", file, msg), errors.codes.not_executable)
end

-- execve, and for a file without a #! line (ENOEXEC) the shell, as execvp does.
local function try_exec(path, argv, envp)
  local _, msg, errno = core.execve(path, argv, envp)
  if errno == core.ENOEXEC then
    local shell_argv = { "/bin/sh", path, table.unpack(argv, 2) }
    _, msg, errno = core.execve("/bin/sh", shell_argv, envp)
  end
  return msg, errno
end

--- Replace this process with `argv`, environment `env` (a name -> value map).
-- Only returns by raising: 127 when not found, 126 when not executable.
function M.execvp(argv, env)
  local file, envp = argv[1], env_list(env)
  if file == "" then
    errors.raise('exec "": executable file not found in $PATH', errors.codes.not_found)
  end
  if file:find("/", 1, true) then
    local msg, errno = try_exec(file, argv, envp)
    fail(file, errno, msg)
  end
  local denied, denied_msg
  for dir in ((env.PATH or M.DEFAULT_PATH) .. ":"):gmatch("([^:]*):") do
    local path = (dir == "" and "." or dir) .. "/" .. file
    local msg, errno = try_exec(path, argv, envp)
    if errno == core.EACCES then
      denied, denied_msg = path, msg
    elseif errno ~= core.ENOENT and errno ~= core.ENOTDIR then
      fail(path, errno, msg)
    end
  end
  if denied then fail(denied, core.EACCES, denied_msg) end
  errors.raise(string.format("exec %q: executable file not found in $PATH", file), errors.codes.not_found)
end

--- Where execvp would find `argv[1]`, checked now: the OCI runtime's
-- create says "not found" before the container waits for start, as runc.
-- @return path; raises 127 when not found, 126 when not executable
function M.lookup(argv, env)
  local file = argv[1]
  local function usable(path)
    local ok, _, errno = core.access(path, "execute")
    if ok and lfs.attributes(path, "mode") == "file" then return true end
    if ok or errno == core.EACCES then fail(path, core.EACCES, "permission denied") end
    return false
  end
  if file == "" then errors.raise('exec "": executable file not found in $PATH', errors.codes.not_found) end
  if file:find("/", 1, true) then
    if not usable(file) then fail(file, core.ENOENT) end
    return file
  end
  for dir in ((env.PATH or M.DEFAULT_PATH) .. ":"):gmatch("([^:]*):") do
    local path = (dir == "" and "." or dir) .. "/" .. file
    if lfs.attributes(path) and usable(path) then return path end
  end
  errors.raise(string.format("exec %q: executable file not found in $PATH", file), errors.codes.not_found)
end

return M

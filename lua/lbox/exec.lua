--- Running the container's command: PATH lookup as a shell does it
-- (POSIX execvp), with docker's exit codes when it fails.
local core = require "lbox.core"
local errors = require "lbox.errors"

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

return M

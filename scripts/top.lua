-- lbox top CONTAINER [PS OPTIONS]: the processes of a running container as
-- the host's ps shows them (host pids; default `ps -ef`), as docker top:
-- ps runs on the host and only the rows of the container's processes stay.
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local lfs = require "lfs"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, operands = options.command({
  name = "top", synopsis = { "CONTAINER [PS OPTIONS]" }, summary = "show a container's processes",
  description = "Lists the processes of a running container as the host's ps shows them (host pids; "
    .. "default ps -ef), as docker top: ps runs on the host and only the container's rows stay.",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local ref = operands[1]
local found = state.find(ref)
if found.status ~= "running" then
  errors.raise(string.format("cannot list the processes of container %s: it is not running", ref), 1)
end

-- the container's processes: every one in PID 1's pid namespace
local namespace = lfs.symlinkattributes("/proc/" .. found.pid .. "/ns/pid", "target")
if not namespace then errors.raise(string.format("container %s has ended", ref), 1) end
local members = {}
for entry in fs.dir("/proc") do
  if entry:match("^%d+$") and lfs.symlinkattributes("/proc/" .. entry .. "/ns/pid", "target") == namespace then
    members[entry] = true
  end
end

local ps_args = { table.unpack(operands, 2) }
if #ps_args == 0 then ps_args = { "-ef" } end
local quoted = {}
for i, word in ipairs(ps_args) do quoted[i] = fs.quote(word) end
local ps = io.popen("ps " .. table.concat(quoted, " ") .. " 2>&1")
local function words(line)
  local list = {}
  for word in (line or ""):gmatch("%S+") do list[#list + 1] = word end
  return list
end
local header = ps:read("l")
local column
for i, name in ipairs(words(header)) do
  if name == "PID" then column = i end
end
local rows = {}
for line in ps:lines() do rows[#rows + 1] = line end
local ok = ps:close()
if not ok or not column then
  errors.raise("ps " .. table.concat(ps_args, " ") .. ": " .. (column and table.concat(rows, " ")
    or "its output has no PID column" .. (header and ": " .. header or "")))
end
print(header)
for _, line in ipairs(rows) do
  if members[words(line)[column]] then print(line) end
end
return 0

-- lbox ps [-a] [-q] [--format json]: containers, running (or all, with -a).
local cjson = require "cjson"
local options = require "lbox.options"
local state = require "lbox.state"

local opts = options.command({
  name = "ps", synopsis = { "[-a] [-q] [--format json]" }, summary = "list containers",
  description = "Running containers, or all with -a: id, image, command, created, status, name. Whether "
    .. "one runs is asked of its lock, never of a recorded pid, so a dead container never shows as running.",
  options = {
    { "all", short = "a", help = "all containers, not only running ones" },
    { "quiet", short = "q", help = "only the short ids" },
    { "format", value = "json", help = "print the list as JSON" },
  },
  operands = { 0, 0 },
}, { ... })
if not opts then return 0 end
local shown = {}
for _, s in ipairs(state.list()) do
  if opts.all or s.status == "running" then shown[#shown + 1] = s end
end

local function ago(t)
  local seconds = os.time() - (t or os.time())
  if seconds < 120 then return seconds .. " seconds" end
  if seconds < 7200 then return seconds // 60 .. " minutes" end
  return seconds // 3600 .. " hours"
end

if opts.format == "json" then
  print(cjson.encode(shown))
elseif opts.format then
  require("lbox.errors").raise("--format: only json is known")
elseif opts.quiet then
  for _, s in ipairs(shown) do print(s.id:sub(1, 12)) end
else
  print(string.format("%-12s  %-12s  %-24s  %-14s  %-28s  %s", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"))
  for _, s in ipairs(shown) do
    local status = s.status == "running" and "Up " .. ago(s.started) .. (s.paused and " (Paused)" or "")
      or s.status == "exited" and string.format("Exited (%s) %s ago", s.lost and "?" or s.exit_code, ago(s.finished))
      or s.status
    local command = table.concat(s.command or {}, " ")
    print(string.format("%-12s  %-12s  %-24s  %-14s  %-28s  %s", s.id:sub(1, 12), (s.image or ""):sub(1, 12),
      '"' .. command:sub(1, 21) .. (#command > 21 and "…" or "") .. '"', ago(s.created) .. " ago", status, s.name or ""))
  end
end
return 0

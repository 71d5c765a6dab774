-- lbox logs [-f] [--tail N] CONTAINER: what a detached container wrote.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local opts, args = options.command({
  name = "logs", synopsis = { "[-f] [--tail N] CONTAINER" }, summary = "show what a detached container wrote",
  description = "The container's output (standard output and error, as written) from its container.log.",
  options = {
    { "follow", short = "f", help = "go on printing new output until the container ends" },
    { "tail", short = "n", value = "N", help = "only the last N lines" },
  },
  operands = { 1, 1 },
}, { ... })
if not opts then return 0 end
local s = state.find(args[1])
-- one handle for what is there and what comes: nothing written between the
-- two is lost
local log = io.open(s.log or state.dir(s.id) .. "/container.log")
local text = log and log:read("a") or ""
if opts.tail then
  local n = units.integer(opts.tail, 0, math.maxinteger) or errors.raise("--tail: a number of lines expected")
  local lines = {}
  for line in text:gmatch("[^\n]*\n?") do if line ~= "" then lines[#lines + 1] = line end end
  text = table.concat(lines, "", math.max(1, #lines - n + 1))
end
io.write(text)
io.flush()
if opts.follow and log then
  repeat
    local alive = state.owned(s.id)
    local more = log:read("a")
    if more ~= "" then io.write(more) io.flush() end
    if alive then core.poll({}, 100) end
  until not alive
end
if log then log:close() end
return 0

-- lbox wait CONTAINER...: block until each container ends, then print its
-- exit code, as docker wait.
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, args = options.command({
  name = "wait", synopsis = { "CONTAINER..." }, summary = "wait for containers to end",
  description = "Blocks until each container ends, then prints its exit code, one a line, as docker wait.",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local found = {}
for i, ref in ipairs(args) do found[i] = state.find(ref) end
for _, s in ipairs(found) do
  state.wait_ended(s.id)
  local ended = state.current(s.id)
  if not ended then
    errors.raise(string.format("container %s was removed when it ended", s.id:sub(1, 12)), 1)
  end
  print(ended.exit_code)
end
return 0

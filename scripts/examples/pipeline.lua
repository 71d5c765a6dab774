-- Two containers joined by a pipe: the producer's stdout is the consumer's stdin.
--   lbox examples/pipeline [COUNT]
local core = require "lbox.core"
local lbox = require "lbox"

local options = require "lbox.options"

local opts, args = options.command({
  name = "examples/pipeline", synopsis = { "[COUNT]" },
  summary = "two containers joined by a pipe: the producer's stdout (COUNT lines, 1000 by default) "
    .. "is the consumer's stdin",
  operands = { 0, 1 },
}, { ... })
if not opts then return 0 end
local count = tonumber(args[1]) or 1000
local read_end, write_end = assert(core.pipe())
local producer = lbox.container {
  hostname = "producer", command = { "seq", "1", tostring(count) }, stdio = { stdout = write_end },
}
local consumer = lbox.container {
  hostname = "consumer", command = { "sh", "-c", 'echo "$(hostname) got $(wc -l) lines"' }, stdio = { stdin = read_end },
}
producer:start()
consumer:start()
-- now only the containers hold the pipe: the consumer sees its end when the producer ends
core.close(read_end)
core.close(write_end)
local produced, consumed = producer:wait(), consumer:wait()
return math.max(produced.exit_code, consumed.exit_code)

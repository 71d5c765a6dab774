--- The lbox REPL, in the manner of lua.c: an expression prints its values
-- (tables laid out, containers by id and state), an incomplete chunk asks
-- for more lines, an error is reported and the REPL goes on; Ctrl-C
-- interrupts the line running (a loop, a container's wait), leaving the
-- containers as they are. On a terminal:
-- line editing, history and tab completion (readline). It ends on Ctrl-D,
-- os.exit, a hangup, SIGHUP or SIGTERM, and every container it started is
-- removed.
local container = require "lbox.container"
local core = require "lbox.core"

local M = {}

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                   "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }
local ENDING_SIGNALS = { core.SIGHUP, core.SIGTERM }

--- `value` as the REPL shows it: tables laid out with sorted keys (to
-- `depth` levels), anything with a __tostring by it, strings quoted.
function M.show(value, depth, indent, seen)
  depth, indent, seen = depth or 3, indent or "", seen or {}
  local kind = type(value)
  if kind == "string" then return string.format("%q", value) end
  if kind ~= "table" then return tostring(value) end
  local mt = getmetatable(value)
  if mt and mt.__tostring then return tostring(value) end
  if seen[value] then return "<cycle>" end
  if depth == 0 or next(value) == nil then return next(value) == nil and "{}" or "{...}" end
  seen[value] = true
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local lines = {}
  for _, k in ipairs(keys) do
    local key = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or "[" .. M.show(k, 0) .. "]"
    lines[#lines + 1] = indent .. "  " .. key .. " = " .. M.show(value[k], depth - 1, indent .. "  ", seen)
  end
  seen[value] = nil
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. indent .. "}"
end

--- Completions of `word` in `env`: globals and keywords, or the fields of
-- a table reached by `a.b.` and the methods reached by `box:`.
function M.complete(env, word)
  local path, sep, partial = word:match("^(.-)([.:])([%w_]*)$")
  local names, matches = {}, {}
  local function add_keys(t)
    local guard = 0
    while type(t) == "table" and guard < 4 do
      for k in pairs(t) do if type(k) == "string" then names[k] = true end end
      local mt = getmetatable(t)
      t = mt and type(mt.__index) == "table" and mt.__index or nil
      guard = guard + 1
    end
  end
  if path then
    local value = env
    for name in path:gmatch("[^.:]+") do
      value = type(value) == "table" and value[name] or nil
    end
    add_keys(value)
  else
    partial = word
    add_keys(env)
    for _, k in ipairs(KEYWORDS) do names[k] = true end
  end
  for name in pairs(names) do
    if name:sub(1, #partial) == partial and name:match("^[%a_][%w_]*$") then
      matches[#matches + 1] = (path and path .. sep or "") .. name
    end
  end
  table.sort(matches)
  return matches
end

-- Compile `text`, preferring it as an expression; "incomplete" when the
-- chunk only lacks more lines.
local function compile(text, env)
  local chunk = load("return " .. text, "=repl", "t", env)
  if chunk then return chunk end
  local msg
  chunk, msg = load(text, "=repl", "t", env)
  if not chunk and msg:find("<eof>$") then return nil, "incomplete" end
  return chunk, msg
end

-- Ctrl-C ignored between evaluations (at the prompt, a line is not lost
-- to it), and no interrupt left pending.
local function disarm_interrupt()
  core.signal({ core.SIGINT }, "ignore")
  debug.sethook()
end

--- Evaluate one more line; @return the text still pending (incomplete) | nil
local function evaluate(env, pending, line)
  local text = pending and pending .. "\n" .. line or line
  local chunk, msg = compile(text, env)
  if msg == "incomplete" then return text end
  if not chunk then
    print(msg)
    return nil
  end
  -- Ctrl-C stops the chunk, not the REPL: a Lua loop by a hook (as lua.c),
  -- a container's wait by raising instead of passing it on (lbox.container)
  core.signal({ core.SIGINT }, "interrupt")
  core.sigmask("unblock", { core.SIGINT })
  local results = table.pack(xpcall(chunk, function(e)
    if e == "interrupted" or tostring(e):match("^[^\n]*:%d+: interrupted$") then return "interrupted" end
    -- the user's frames only: up to the REPL's own call
    local trace = debug.traceback("", 2):gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
    return tostring(e) .. trace
  end))
  -- an interrupt that comes now raises here, and the next try completes
  repeat until pcall(disarm_interrupt)
  if not results[1] then
    print(results[2])
  elseif results.n > 1 then
    local shown = {}
    for i = 2, results.n do shown[#shown + 1] = M.show(results[i]) end
    print(table.concat(shown, "\t"))
    env._ = results[2]
  end
  return nil
end

--- The environment chunks run in: globals, `lbox`, and an os.exit that
-- removes containers first.
function M.environment()
  local env = setmetatable({ lbox = require "lbox" }, { __index = _G })
  env.os = setmetatable({ exit = function(...)
    container.destroy_all()
    return os.exit(...)
  end }, { __index = os })
  return env
end

-- The next line of descriptor 0, read beside a signalfd of the ending
-- signals, blocked while it waits, so that one ends the wait at once with
-- no race between a check and a blocking read. One that came while a line
-- ran, when a container's end unblocked them, was noted by the handler.
-- @return line | nil at the end of input, and the ending signal if one came
local function next_line(input, signals)
  while true do
    local line = input.text:match("^[^\n]*\n")
    if line then
      input.text = input.text:sub(#line + 1)
      return line:sub(1, -2)
    end
    if input.ended then
      line, input.text = input.text ~= "" and input.text or nil, ""
      return line
    end
    core.sigmask("block", ENDING_SIGNALS)
    local ending = core.caught()[1]
    if ending then return nil, ending end
    local ready = core.poll({ 0, signals })
    ending = ready[signals] and core.read_signal(signals)
    if ending then return nil, ending end
    if ready[0] then
      -- end of file, or a read error such as a hung-up terminal's EIO
      local data = core.read(0, 4096)
      if data and data ~= "" then input.text = input.text .. data else input.ended = true end
    end
  end
end

-- Without readline (no terminal, or no lua-readline): plain lines. The
-- ending signals are caught, not fatal (a container's end unblocks them,
-- even while its destroy runs), and read from a signalfd while the REPL
-- waits for a line (a container's wait reads them while one runs).
local function plain_loop(env)
  core.sigmask("block", ENDING_SIGNALS)
  core.signal(ENDING_SIGNALS, "catch")
  local signals = assert(core.signalfd(ENDING_SIGNALS))
  local input, pending = { text = "" }, nil
  while true do
    io.stdout:write(pending and ">> " or "> ")
    io.stdout:flush()
    local line, ending = next_line(input, signals)
    if ending then io.stdout:write("\nlbox: signal ", ending, ": leaving") end
    if not line then break end
    pending = evaluate(env, pending, line)
  end
  container.destroy_all()
  core.close(signals)
  core.sigmask("unblock", ENDING_SIGNALS) -- one still pending is only noted
  core.caught()
  core.signal(ENDING_SIGNALS, "default")
end

-- With readline (its blocking call: lua-readline 3.1's callback interface
-- closes the terminal's stream before readline is done with it, a
-- use-after-free at handler_remove). The ending signals are caught, not
-- fatal, and open only while readline waits: GNU readline gives up its
-- read on SIGHUP or SIGTERM and returns nil, so the REPL ends at once.
-- While a line runs they stay blocked (a container's wait reads them).
local function terminal_loop(env, rl)
  core.sigmask("block", ENDING_SIGNALS)
  core.signal(ENDING_SIGNALS, "catch")
  -- caught() also lists the Ctrl-C that interrupted a line: not an ending
  local function ending_signal()
    for _, sig in ipairs(core.caught()) do
      if sig ~= core.SIGINT then return sig end
    end
  end
  rl.set_options { histfile = "~/.lbox_history", completion = true }
  rl.set_complete_function(function(text, from, to)
    return M.complete(env, text:sub(from, to))
  end)
  local pending
  while true do
    core.sigmask("unblock", ENDING_SIGNALS) -- one that came while a line ran arrives now
    local ending = ending_signal()
    local line = not ending and rl.readline(pending and ">> " or "> ")
    core.sigmask("block", ENDING_SIGNALS)
    ending = ending or ending_signal()
    if ending then io.stdout:write("\nlbox: signal ", ending, ": leaving") end
    if not line or ending then break end
    pending = evaluate(env, pending, line)
  end
  rl.save_history()
  container.destroy_all()
  core.signal(ENDING_SIGNALS, "default")
  core.sigmask("unblock", ENDING_SIGNALS)
end

--- Read-eval-print until the input ends or SIGHUP/SIGTERM arrives.
-- @param env the environment chunks run in (default: M.environment())
function M.run(env)
  env = env or M.environment()
  container.INTERRUPTING_SIGNALS[core.SIGINT] = true
  disarm_interrupt()
  print("lbox REPL (" .. _VERSION .. "): `lbox` is loaded; Ctrl-D leaves and removes its containers")
  local has_readline, rl = pcall(require, "readline")
  if has_readline and core.isatty(0) then
    terminal_loop(env, rl)
  else
    if core.isatty(0) then print("(no line editing, history or completion: lua-readline is not installed)") end
    plain_loop(env)
  end
  io.stdout:write("\n")
  container.destroy_all()
  container.INTERRUPTING_SIGNALS[core.SIGINT] = nil
  core.signal({ core.SIGINT }, "default")
  return 0
end

return M

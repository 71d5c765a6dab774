--- A docker-style command line parser: options come before the command;
-- `-it` combines flags; `--name=value`, `--name value`, `-m value`, `-m100m`;
-- the first word that is not an option, or `--`, ends them.
--
-- A definition: { "memory", short = "m", value = "SIZE", help = "...",
--   list = true (repeatable), aliases = { "mem" } (also as `-mem`) }.
local errors = require "lbox.errors"

local M = {}

local function index(defs)
  local by_name = {}
  for _, def in ipairs(defs) do
    by_name["--" .. def[1]] = def
    if def.short then by_name["-" .. def.short] = def end
    for _, alias in ipairs(def.aliases or {}) do
      by_name["-" .. alias] = def
      by_name["--" .. alias] = def
    end
  end
  return by_name
end

local function store(opts, def, value)
  local key = def[1]
  if def.list then
    opts[key] = opts[key] or {}
    table.insert(opts[key], value)
  else
    opts[key] = value
  end
end

--- Parse `argv` from position `first`.
-- @return options table (keys are the long names), index of the first
--   non-option word (#argv + 1 when there is none)
function M.parse(defs, argv, first)
  local by_name = index(defs)
  local opts = {}
  local i = first or 1
  while i <= #argv do
    local word = argv[i]
    if word == "--" then return opts, i + 1 end
    if word:sub(1, 1) ~= "-" or word == "-" then break end
    local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
    name = name or word
    local def = by_name[name]
    if not def and not word:match("^%-%-") then
      -- combined short flags: -it, -m100m
      for pos = 2, #word do
        local short = by_name["-" .. word:sub(pos, pos)]
        if not short then
          errors.raise(string.format("unknown flag %q (in %q)", "-" .. word:sub(pos, pos), word))
        end
        if short.value then
          local rest = word:sub(pos + 1)
          if rest == "" then
            i = i + 1
            rest = argv[i] or errors.raise(string.format("flag %q needs a value (%s)", "-" .. short.short, short.value))
          end
          store(opts, short, rest)
          break
        end
        store(opts, short, true)
      end
    elseif not def then
      errors.raise(string.format("unknown flag %q", name))
    elseif def.value then
      if not inline then
        i = i + 1
        inline = argv[i] or errors.raise(string.format("flag %q needs a value (%s)", name, def.value))
      end
      store(opts, def, inline)
    elseif inline then
      errors.raise(string.format("flag %q takes no value", name))
    else
      store(opts, def, true)
    end
    i = i + 1
  end
  return opts, i
end

--- How an option is written: "-m, --memory SIZE".
function M.names(def)
  local names = (def.short and ("-" .. def.short .. ", ") or "") .. "--" .. def[1]
  return def.value and names .. " " .. def.value or names
end

--- Usage text: one line per option.
-- The names' column is as wide as its longest entry (28 at least), so that
-- at least three spaces part each from its text (the manual's check reads
-- --help by that).
function M.usage(defs)
  local names, width = {}, 28
  for i, def in ipairs(defs) do
    names[i] = (def.short and "" or "    ") .. M.names(def)
    width = math.max(width, #names[i] + 2)
  end
  local lines = {}
  for i, def in ipairs(defs) do
    lines[i] = string.format("  %-" .. width .. "s %s", names[i], def.help or "")
  end
  return table.concat(lines, "\n")
end

--- A command's options with --help last, as --help, the manual and the
-- completion show them; -h too, unless the command gives -h another meaning
-- (run's -h is --hostname, as docker's).
function M.with_help(command)
  local defs, h_taken = {}, false
  for _, def in ipairs(command.options or {}) do
    if def[1] ~= "help" then
      defs[#defs + 1] = def
      h_taken = h_taken or def.short == "h"
    end
  end
  defs[#defs + 1] = { "help", short = not h_taken and "h" or nil, help = "show this help" }
  return defs
end

-- "lbox NAME SYNOPSIS", without a trailing space for a command without operands.
local function invocation(command, synopsis)
  return "lbox " .. command.name .. (synopsis ~= "" and " " .. synopsis or "")
end

--- A command's --help text. A command (or recipe) is { name = "logs",
-- synopsis = { "[-f] [--tail N] CONTAINER", ... }, summary = "one line",
-- description = "paragraphs", options = { definitions }, operands = { min
-- [, max] } }: one table gives --help, the usage error, the manual page and
-- the bash completion (build-aux/manpages.lua), so none drifts.
function M.help(command)
  local lines = {}
  for i, synopsis in ipairs(command.synopsis) do
    lines[i] = (i == 1 and "usage: " or "       ") .. invocation(command, synopsis)
  end
  return table.concat(lines, "\n") .. "\n\n" .. command.summary .. "\n\noptions:\n" .. M.usage(M.with_help(command))
end

--- Raise the usage error of `command`: its synopsis, one line.
function M.usage_error(command)
  errors.raise("usage: " .. invocation(command, table.concat(command.synopsis, " | ")) .. " (see --help)")
end

--- Set by the manual's generator: called with each command described.
M.describe = nil

--- Parse the command line of `command` (see help). -h/--help prints the help
-- and gives nil: the command then ends, 0, before it has done anything. Too
-- few or too many operands (command.operands) raise the usage error.
-- @return options, list of operands | nil after --help
function M.command(command, argv)
  if M.describe then M.describe(command) end
  local opts, first = M.parse(M.with_help(command), argv)
  if opts.help then
    print(M.help(command))
    return nil
  end
  local operands = table.move(argv, first, #argv, 1, {})
  local min, max = table.unpack(command.operands or {})
  if (min and #operands < min) or (max and #operands > max) then M.usage_error(command) end
  return opts, operands
end

return M

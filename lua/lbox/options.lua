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

M.HELP = { "help", short = "h", help = "show this help" }

--- The command line of a command or recipe, from its description:
--   { usage = "lbox kill [-s SIGNAL] CONTAINER...", summary = "what it does",
--     options = { definitions }, operands = { min [, max] } }
-- -h/--help is added to the options: it prints the usage, the summary and
-- one line per option, and gives nil (the command then ends, 0). Too few or
-- too many operands raise "usage: ...".
-- @return options, list of operands | nil after --help
function M.command(command, argv)
  local defs = table.move(command.options or {}, 1, #(command.options or {}), 1, {})
  local has_help = false
  for _, def in ipairs(defs) do has_help = has_help or def[1] == "help" end
  if not has_help then defs[#defs + 1] = M.HELP end
  local opts, first = M.parse(defs, argv)
  if opts.help then
    print("usage: " .. command.usage .. "\n\n" .. (command.summary and command.summary .. "\n\n" or "")
      .. "options:\n" .. M.usage(defs))
    return nil
  end
  local operands = table.move(argv, first, #argv, 1, {})
  local min, max = table.unpack(command.operands or {})
  if (min and #operands < min) or (max and #operands > max) then
    errors.raise("usage: " .. command.usage .. " (see --help)")
  end
  return opts, operands
end

--- Usage text: one line per option.
function M.usage(defs)
  local lines = {}
  for _, def in ipairs(defs) do
    local names = (def.short and ("-" .. def.short .. ", ") or "    ") .. "--" .. def[1]
    if def.value then names = names .. " " .. def.value end
    lines[#lines + 1] = string.format("  %-28s %s", names, def.help or "")
  end
  return table.concat(lines, "\n")
end

return M

-- build-aux/manpages.lua OUTDIR: lbox's manual and bash completion, made by
-- lbox itself (`./lbox build-aux/manpages.lua build/doc`) from the tables
-- that --help prints, so that neither can drift from the code:
--   OUTDIR/man1/lbox.1         from lbox.cli's usage and each command's table
--   OUTDIR/man1/lbox-NAME.1    one per command (scripts/NAME.lua: options.command)
--   OUTDIR/man7/lbox-api.7     from lua/API.md
--   OUTDIR/completion/lbox     bash: commands, options, containers, images
local cli = require "lbox.cli"
local fs = require "lbox.fs"
local lbox = require "lbox"
local lfs = require "lfs"
local options = require "lbox.options"

local out = ... or error("usage: lbox build-aux/manpages.lua OUTDIR")
local root = cli.root
local FOOTER = string.format('"lbox %s" "lbox manual"', lbox.version)

-- roff: a backslash, a leading dot or quote, and hyphens (as typed, not as
-- typeset) escaped; `code`, **strong** and [links](...) of markdown.
local function roff(text)
  text = text:gsub("\\", "\\e"):gsub("%-", "\\-")
  text = text:gsub("`([^`]*)`", "\\fB%1\\fR"):gsub("%*%*([^*]*)%*%*", "\\fB%1\\fR")
  text = text:gsub("%[([^%]]*)%]%([^)]*%)", "%1")
  text = text:gsub(utf8.charpattern, function(c)
    if #c > 1 then return string.format("\\[u%04X]", utf8.codepoint(c)) end
  end)
  return (text:gsub("^([.'])", "\\&%1"):gsub("\n([.'])", "\n\\&%1"))
end

local function write(path, text)
  assert(fs.mkdir_p(path:match("^(.*)/")))
  fs.write_file(path, text)
end

-- The table of the command `name` in the script at `path`, as
-- options.command sees it when `lbox NAME... --help` runs.
local DESCRIBED = {}
local function describe(path, name, argv)
  options.describe = function(command)
    if command.name == name then error(setmetatable({ command = command }, DESCRIBED)) end
  end
  local ok, described = pcall(assert(loadfile(path)), table.unpack(argv))
  options.describe = nil
  assert(not ok and getmetatable(described) == DESCRIBED, path .. " did not describe " .. name .. ": "
    .. tostring(described))
  return described.command
end

-- Each command's table, and those of its subcommands (lbox network create...)
-- in command.described_subcommands.
local function commands()
  local found = {}
  for file in lfs.dir(root .. "/scripts") do
    local path = root .. "/scripts/" .. file
    local source = file:match("%.lua$") and fs.read_file(path) or ""
    -- a command: it parses its line with options.command, itself or
    -- through views.open_command (commit, export)
    if source:find("options.command(", 1, true) or source:find("views.open_command(", 1, true) then
      local command = describe(path, file:match("^(.*)%.lua$"), { "--help" })
      command.described_subcommands = {}
      for i, sub in ipairs(command.subcommands or {}) do
        command.described_subcommands[i] = describe(path, command.name .. " " .. sub, { sub, "--help" })
      end
      found[#found + 1] = command
    end
  end
  table.sort(found, function(a, b) return a.name < b.name end)
  return found
end

-- "network create" -> "network\-create", as in page names
local function page_name(command)
  return (command.name:gsub(" ", "\\-"))
end

local function option_items(defs)
  local lines = {}
  for _, def in ipairs(defs) do
    lines[#lines + 1] = ".TP\n.B " .. roff(options.names(def)) .. "\n" .. roff(def.help or "")
  end
  return table.concat(lines, "\n")
end

local function command_page(command)
  local synopsis = {}
  for _, line in ipairs(command.synopsis) do
    synopsis[#synopsis + 1] = ".B lbox " .. command.name .. "\n" .. (line ~= "" and roff(line) .. "\n" or "") .. ".br"
  end
  local see = {}
  for _, sub in ipairs(command.described_subcommands or {}) do
    see[#see + 1] = ".BR lbox\\-" .. page_name(sub) .. " (1),"
  end
  see[#see + 1] = ".BR lbox (1)"
  return table.concat({
    string.format('.TH LBOX\\-%s 1 "" %s', page_name(command):upper(), FOOTER),
    ".SH NAME", "lbox\\-" .. page_name(command) .. " \\- " .. roff(command.summary),
    ".SH SYNOPSIS", table.concat(synopsis, "\n"),
    ".SH DESCRIPTION", roff(command.description or command.summary),
    ".SH OPTIONS", option_items(options.with_help(command)),
    ".SH SEE ALSO", table.concat(see, "\n"),
  }, "\n") .. "\n"
end

local function main_page(list)
  local items = {}
  for _, command in ipairs(list) do
    items[#items + 1] = ".TP\n.B " .. command.name .. "\n" .. roff(command.summary) .. "; see\n.BR lbox\\-"
      .. command.name .. " (1)."
  end
  local see = {}
  for _, command in ipairs(list) do see[#see + 1] = ".BR lbox\\-" .. command.name .. " (1)," end
  return table.concat({
    string.format('.TH LBOX 1 "" %s', FOOTER),
    ".SH NAME", "lbox \\- a Linux container runtime with a C core and Lua behaviour",
    ".SH SYNOPSIS", ".nf", roff(cli.USAGE:gsub("^usage: ", "")), ".fi",
    ".SH DESCRIPTION",
    roff("lbox runs commands in containers: new namespaces, cgroup limits, an image from its own store "
      .. "(by default the built-in busybox image) under a copy-on-write overlay, pivot_root. The kernel's "
      .. "primitives are C; what a container is and how it is set up is Lua, which a recipe (a Lua file "
      .. "run by lbox) can use and change: see lbox-api(7). Without arguments lbox opens a Lua REPL with "
      .. "the `lbox` module loaded; every container it started is removed when it ends."),
    ".SH COMMANDS", table.concat(items, "\n"),
    ".SH OPTIONS",
    ".TP\n.B \\-\\-help\nthis usage; each command has its own \\-\\-help",
    ".TP\n.B \\-\\-version\nprint lbox's version",
    ".TP\n.BI \\-i \" RECIPE\"\nrun RECIPE, then the REPL with its globals at hand",
    ".SH ENVIRONMENT",
    ".TP\n.B LBOX_STORE\nthe store of images and containers (default /var/lib/lbox)",
    ".TP\n.B LBOX_CGROUP_PARENT\nthe cgroup lbox makes its containers' groups under (default lbox)",
    ".SH EXIT STATUS",
    roff("A command's or recipe's own status; for a container, its exit code or 128+N when signal N "
      .. "killed it. 125: lbox's own error (one line on standard error); 126: the command cannot be run; "
      .. "127: it was not found; 70: a bug in lbox or in a recipe (a traceback)."),
    ".SH FILES", ".TP\n.B /var/lib/lbox\nthe default store: images/, containers/<id>/ (layer, state.json, container.log)",
    ".SH SEE ALSO", table.concat(see, "\n"), ".BR lbox\\-api (7)",
  }, "\n") .. "\n"
end

-- lua/API.md as a man page: headings, paragraphs, code blocks, tables (one
-- tagged paragraph per row) and lists.
local function api_page()
  local lines = {
    string.format('.TH LBOX\\-API 7 "" %s', FOOTER),
    ".SH NAME", "lbox\\-api \\- the Lua API of lbox, for recipes and the REPL",
  }
  local in_code = false
  for line in assert(fs.read_file(root .. "/lua/API.md")):gmatch("([^\n]*)\n") do
    if line:match("^```") then
      in_code = not in_code
      lines[#lines + 1] = in_code and ".PP\n.nf\n.RS 4" or ".RE\n.fi"
    elseif in_code then
      lines[#lines + 1] = roff(line):gsub("^\\fB", "\\&\\fB")
    elseif line:match("^# ") then
      lines[#lines + 1] = ".SH DESCRIPTION"
    elseif line:match("^##+ ") then
      lines[#lines + 1] = ".SH " .. roff(line:gsub("^#+ ", ""):gsub("`", ""):upper())
    elseif line:match("^|%-") then -- a table's rule
      lines[#lines] = lines[#lines]:match("^%.TP\n") and "" or lines[#lines]
    elseif line:match("^|") then
      local cells = {}
      for cell in line:gsub("\\|", "\0"):gmatch("|%s*([^|]*)") do
        cell = cell:gsub("%s+$", ""):gsub("\0", "|")
        if cell ~= "" then cells[#cells + 1] = cell end
      end
      lines[#lines + 1] = ".TP\n" .. roff(cells[1] or "") .. "\n" .. roff(table.concat(cells, "; ", 2))
    elseif line:match("^%- ") then
      lines[#lines + 1] = ".IP \\(bu 2\n" .. roff(line:sub(3))
    elseif line == "" then
      lines[#lines + 1] = ".PP"
    else
      lines[#lines + 1] = roff(line)
    end
  end
  lines[#lines + 1] = ".SH SEE ALSO\n.BR lbox (1)"
  return table.concat(lines, "\n") .. "\n"
end

-- bash completion: the words each command takes, from the same tables.
local function completion(list)
  local names, cases = {}, {}
  for _, command in ipairs(list) do
    names[#names + 1] = command.name
    local flags = {}
    local with_value = {}
    local defs = options.with_help(command)
    for _, sub in ipairs(command.described_subcommands) do
      table.move(sub.options or {}, 1, #(sub.options or {}), #defs + 1, defs)
    end
    for _, def in ipairs(defs) do
      flags[#flags + 1] = "--" .. def[1]
      if def.short then flags[#flags + 1] = "-" .. def.short end
      if def.value then
        with_value[#with_value + 1] = "--" .. def[1]
        if def.short then with_value[#with_value + 1] = "-" .. def.short end
      end
    end
    local synopsis = table.concat(command.synopsis, " ")
    local operands = {}
    if synopsis:find("CONTAINER") then operands[#operands + 1] = "containers" end
    if synopsis:find("IMAGE") then operands[#operands + 1] = "images" end
    local subcommands = {}
    if #command.synopsis > 1 then
      operands[#operands + 1] = "subcommands"
      for _, line in ipairs(command.synopsis) do subcommands[#subcommands + 1] = line:match("^%S+") end
    end
    cases[#cases + 1] = string.format("    %s) flags='%s' valued='%s' operands='%s' subcommands='%s' ;;", command.name,
      table.concat(flags, " "), table.concat(with_value, " "), table.concat(operands, " "), table.concat(subcommands, " "))
  end
  return ([==[
# bash completion for lbox: commands, their options, container names and
# ids, images. Generated by build-aux/manpages.lua from the commands' tables.
_lbox() {
  local lbox=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local command=${COMP_WORDS[1]} flags='' valued='' operands='' subcommands='' words=''
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W '@NAMES@ --help --version -i' -- "$cur"))
    [ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -X '!*.lua' -- "$cur"))
    return
  fi
  case $command in
@CASES@
    *) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  case " $valued " in *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return ;; esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  case " $operands " in *" containers "*)
    words+=" $("$lbox" ps -aq 2>/dev/null)"
    words+=" $("$lbox" ps -a --format json 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4)" ;;
  esac
  case " $operands " in *" subcommands "*)
    # lbox image: its subcommand, then images to rm, else files to import
    if [ "$COMP_CWORD" -eq 2 ]; then words=$subcommands
    elif [ "$command ${COMP_WORDS[2]}" = "image rm" ]; then operands=images
    elif [ "$command" = network ]; then operands=networks
    else COMPREPLY=($(compgen -f -- "$cur")); return
    fi ;;
  esac
  case " $operands " in *" images "*) words+=" $("$lbox" image ls 2>/dev/null | tail -n +2 | cut -d' ' -f1)" ;; esac
  case " $operands " in *" networks "*) words+=" $("$lbox" network ls 2>/dev/null | tail -n +2 | cut -d' ' -f1)" ;; esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  [ "$command" = run ] && COMPREPLY+=($(compgen -c -- "$cur"))
  return 0
}
complete -F _lbox lbox
]==]):gsub("@NAMES@", table.concat(names, " ")):gsub("@CASES@", function() return table.concat(cases, "\n") end)
end

local list = commands()
write(out .. "/man1/lbox.1", main_page(list))
for _, command in ipairs(list) do
  write(out .. "/man1/lbox-" .. command.name .. ".1", command_page(command))
  for _, sub in ipairs(command.described_subcommands) do
    write(out .. "/man1/lbox-" .. sub.name:gsub(" ", "-") .. ".1", command_page(sub))
  end
end
write(out .. "/man7/lbox-api.7", api_page())
write(out .. "/completion/lbox", completion(list))
return 0

# SPDX-License-Identifier: Apache-2.0
# Copies an scdoc template, replacing the line @MARKDOWN@ with the Markdown file `md` converted to
# scdoc, so that a manual page can be a document of docs/ rather than a copy of it
# (cmake/ManPages.cmake: sluice.toml(5) is docs/configuration.md).
# Usage: awk -v md=docs/configuration.md -f md2scd.awk TEMPLATE.scd > OUT.scd
#
# The Markdown this understands is the subset docs/ uses: headings (the first, the title, is left
# out; ## becomes a section, ### and deeper a subsection), paragraphs, "- " lists whose items go
# on in lines indented by two spaces, fenced code blocks, tables (a table whose first column is
# "Key" becomes one entry per key: the key, its type and default, the meaning indented below it;
# any other table one entry per row), and inline code, **bold** and [links](target). Anything
# else is kept as paragraph text, where `man --warnings` (tests/gateway/cli_man_page_test.sh)
# shows what went wrong.

# scdoc's formatting characters, taken literally. (Joined by hand: what a backslash means in the
# replacement of gsub differs between mawk and gawk.)
function escape(s,    out, k, c) {
  out = ""
  for (k = 1; k <= length(s); k++) {
    c = substr(s, k, 1)
    out = out (c == "\\" || c == "*" || c == "_" ? "\\" : "") c
  }
  return out
}

# Markdown inline markup to scdoc: code and **bold** become bold, a link its text.
function inline(s,    out, text, code, i, j, bold, parts, n, k) {
  out = ""
  bold = 0
  while (s != "") {
    i = index(s, "`")
    if (i == 0) {
      text = s
      s = ""
    } else {
      text = substr(s, 1, i - 1)
      s = substr(s, i + 1)
    }
    while (match(text, /\[[^]]*\]\([^)]*\)/)) {
      j = index(substr(text, RSTART), "](")
      text = substr(text, 1, RSTART - 1) substr(text, RSTART + 1, j - 2) \
             substr(text, RSTART + RLENGTH)
    }
    n = split(text, parts, /\*\*/)
    for (k = 1; k <= n; k++) {
      if (k > 1) {
        out = out "*"
        bold = !bold
      }
      out = out escape(parts[k])
    }
    if (i == 0) break
    j = index(s, "`")
    if (j == 0) {  # an unmatched backtick is a backtick
      out = out escape("`" s)
      break
    }
    code = escape(substr(s, 1, j - 1))
    s = substr(s, j + 1)
    out = out (bold ? code : "*" code "*")
  }
  return out
}

function trim(s) {
  sub(/^[ \t]+/, "", s)
  sub(/[ \t]+$/, "", s)
  return s
}

# The cells of a table row, in cells[1..n]; returns n.
function row(line, cells,    n, k) {
  sub(/^[ \t]*\|/, "", line)
  sub(/\|[ \t]*$/, "", line)
  n = split(line, cells, /\|/)
  for (k = 1; k <= n; k++) cells[k] = trim(cells[k])
  return n
}

function flush(    k, text) {
  if (para != "") {
    print inline(para)
    print ""
    para = ""
  }
  if (item != "") {
    print "- " inline(item)
    item = ""
    in_list = 1
  }
}

function end_list() {
  flush()
  if (in_list) print ""
  in_list = 0
}

function table_row(line,    cells, n, k, body) {
  n = row(line, cells)
  if (header_n == 0) {
    header_n = n
    for (k = 1; k <= n; k++) header[k] = cells[k]
    return
  }
  if (line ~ /^[ \t]*\|[ \t]*:?-/) return  # the separator under the header
  if (header[1] == "Key") {
    print inline(cells[1]) " (" inline(cells[2]) "; default: " inline(cells[3]) ")"
    print "\t" inline(cells[4])
  } else {
    print inline(cells[1])
    body = ""
    for (k = 2; k <= n; k++) {
      if (n > 2) body = body (k > 2 ? "; " : "") header[k] ": "
      body = body inline(cells[k])
    }
    print "\t" body
  }
  print ""
}

function convert(file,    line, level, text, fence) {
  fence = 0
  para = ""
  item = ""
  in_list = 0
  header_n = 0
  while ((getline line < file) > 0) {
    if (fence) {
      print line
      if (line ~ /^```/) {
        fence = 0
        print ""
      }
      continue
    }
    if (line !~ /^[ \t]*\|/) header_n = 0
    if (line ~ /^```/) {
      end_list()
      print "```"
      fence = 1
    } else if (line ~ /^#+ /) {
      end_list()
      level = index(line, " ") - 1
      text = substr(line, level + 2)
      gsub(/`/, "", text)
      # roff takes double quotes in a heading for argument delimiters.
      gsub(/"/, "", text)
      if (level == 1) continue
      print (level == 2 ? "# " : "## ") escape(text)
      print ""
    } else if (line ~ /^[ \t]*\|/) {
      end_list()
      table_row(line)
    } else if (line ~ /^- /) {
      flush()
      item = substr(line, 3)
    } else if (line ~ /^[ \t]*$/) {
      end_list()
    } else if (item != "" && line ~ /^  /) {
      item = item " " trim(line)
    } else {
      if (item != "") end_list()
      para = para (para == "" ? "" : " ") trim(line)
    }
  }
  end_list()
  close(file)
  if (fence) {
    print "md2scd: " file ": a code block is not closed" > "/dev/stderr"
    exit 1
  }
}

$0 == "@MARKDOWN@" {
  convert(md)
  next
}
{ print }

#!@PYTHON@
# A stand-in for the 1Password CLI (`op`) for keyrack's tests. It keeps its items in a JSON state
# file, appends every call (argv and the NAMES of the environment variables it saw, never their
# values, never stdin) to a JSON-lines log, and can play "not signed in", "service account token
# required" and "slow". Implements: read, item get, item create, item edit, item delete, --version.
import json
import os
import sys
import time

STATE = "@STATE@"
LOG = "@LOG@"


def load():
    with open(STATE) as f:
        return json.load(f)


def save(state):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE)


def fail(msg):
    sys.stderr.write("[ERROR] 2024/05/01 10:00:00 " + msg + "\n")
    sys.exit(1)


def opt(args, name):
    """Removes `--name VALUE` or `--name=VALUE` from args, returning VALUE (or None)."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            v = args[i + 1]
            del args[i : i + 2]
            return v
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def flag(args, name):
    if name in args:
        args.remove(name)
        return True
    return False


def find_vault(state, ref):
    for v in state["vaults"]:
        if v["id"] == ref or v["name"].lower() == ref.lower():
            return v
    fail('"%s" isn\'t a vault in this account. Specify the vault with its ID or name.' % ref)


def vault_of(state, item):
    return next(v for v in state["vaults"] if v["id"] == item["vault_id"])


def find_item(state, ref, vault):
    pool = [i for i in state["items"] if vault is None or i["vault_id"] == vault["id"]]
    hits = [i for i in pool if i["id"] == ref] or [i for i in pool if i["title"] == ref]
    if not hits:
        where = ' in the "%s" vault' % vault["name"] if vault else ""
        fail('"%s" isn\'t an item%s. Specify the item with its UUID, name, or domain.' % (ref, where))
    if len(hits) > 1:
        fail('More than one item matches "%s". Try again and specify the item by its ID' % ref)
    return hits[0]


def shown(state, item):
    v = vault_of(state, item)
    return {
        "id": item["id"],
        "title": item["title"],
        "version": item.get("version", 1),
        "vault": {"id": v["id"], "name": v["name"]},
        "category": item["category"],
        "tags": item.get("tags", []),
        "fields": [{k: f[k] for k in f if k != "value"} for f in item["fields"]],
    }


def new_id(state):
    state["next_id"] = state.get("next_id", 0) + 1
    return "itm%023d" % state["next_id"]


def from_template(text):
    try:
        t = json.loads(text)
    except ValueError as e:
        fail("invalid JSON in item template: %s" % e.__class__.__name__)
    fields = []
    for f in t.get("fields", []):
        fields.append(
            {
                "id": f.get("id") or f.get("label"),
                "label": f.get("label") or f.get("id"),
                "type": f.get("type", "STRING"),
                "purpose": f.get("purpose", ""),
                "value": f.get("value", ""),
            }
        )
    return t, fields


def cmd_read(state, args):
    no_newline = flag(args, "--no-newline") | flag(args, "-n")
    if len(args) != 1 or not args[0].startswith("op://"):
        fail("expected one secret reference op://<vault>/<item>/<field>")
    ref = args[0]
    parts = ref[len("op://") :].split("/")
    if len(parts) not in (3, 4):
        fail("invalid secret reference '%s'" % ref)
    vault = find_vault(state, parts[0])
    item = find_item(state, parts[1], vault)
    field_ref = parts[-1]
    for f in item["fields"]:
        if f["id"] == field_ref or f["label"] == field_ref:
            sys.stdout.write(f["value"] + ("" if no_newline else "\n"))
            return
    fail("could not read secret '%s': item '%s' does not have a field '%s'" % (ref, item["title"], field_ref))


def cmd_item(state, args):
    sub = args.pop(0) if args else ""
    vault_ref = opt(args, "--vault")
    fmt = opt(args, "--format")
    template = opt(args, "--template")
    vault = find_vault(state, vault_ref) if vault_ref else None
    if sub == "get":
        item = find_item(state, args[0], vault)
        print(json.dumps(shown(state, item)))
    elif sub == "create":
        if "-" in args:
            args.remove("-")
            text = sys.stdin.read()
        elif template:
            with open(template) as f:
                text = f.read()
        else:
            fail("fake op: keyrack must pass the item as a template")
        if args:
            fail("fake op: unexpected arguments %r" % args)
        t, fields = from_template(text)
        if vault is None:
            vault = find_vault(state, state["default_vault"])
        item = {
            "id": new_id(state),
            "title": t.get("title", "Untitled"),
            "vault_id": vault["id"],
            "category": t.get("category", "PASSWORD"),
            "tags": t.get("tags", []),
            "fields": fields,
        }
        state["items"].append(item)
        save(state)
        print(json.dumps(shown(state, item)))
    elif sub == "edit":
        if not template:
            fail("fake op: keyrack must pass the item as a template")
        item = find_item(state, args.pop(0), vault)
        if args:
            fail("fake op: unexpected arguments %r" % args)
        with open(template) as f:
            t, fields = from_template(f.read())
        item["title"] = t.get("title", item["title"])
        item["tags"] = t.get("tags", item.get("tags", []))
        item["fields"] = fields
        item["version"] = item.get("version", 1) + 1
        save(state)
        print(json.dumps(shown(state, item)))
    elif sub == "delete":
        item = find_item(state, args[0], vault)
        state["items"].remove(item)
        save(state)
    else:
        fail("unknown command \"item %s\"" % sub)
    del fmt


def main():
    args = sys.argv[1:]
    with open(LOG, "a") as f:
        f.write(json.dumps({"argv": args, "env": sorted(os.environ.keys())}) + "\n")
    if args == ["--version"]:
        print("2.30.0")
        return
    state = load()
    if state.get("sleep"):
        time.sleep(state["sleep"])
    token = state.get("token")
    given = os.environ.get("OP_SERVICE_ACCOUNT_TOKEN")
    if token is not None:
        if given is None:
            fail("You are not currently signed in. Please run `op signin --help` for instructions")
        if given != token:
            fail("invalid service account token (401: Unauthorized)")
    elif not state.get("signed_in", True):
        fail("You are not currently signed in. Please run `op signin --help` for instructions")
    cmd = args.pop(0) if args else ""
    if cmd == "read":
        cmd_read(state, args)
    elif cmd == "item":
        cmd_item(state, args)
    else:
        fail("unknown command \"%s\" for \"op\"" % cmd)


main()

#!/bin/sh
# The e2e tests' git smart-HTTP server: Debian's git http-backend behind lighttpd, which requires HTTP basic
# authentication with the user x-access-token and the password $GIT_TOKEN (the way GitHub takes a token). It serves
# one bare repository, /$GIT_REPO.git, with one commit on main, and accepts pushes from an authenticated client.
set -eu
: "${GIT_TOKEN:?GIT_TOKEN must be set}"
repo=${GIT_REPO:-repo}
port=${GIT_PORT:-8080}
root=/tmp/git
export HOME=/tmp
mkdir -p "$root"
if [ ! -d "$root/$repo.git" ]; then
  git init --quiet --bare --initial-branch=main "$root/$repo.git"
  seed=$(mktemp -d)
  git -C "$seed" init --quiet --initial-branch=main
  printf '# %s\n\nServed by the e2e git server.\n' "$repo" >"$seed/README.md"
  git -C "$seed" add README.md
  git -C "$seed" -c user.name=Seed -c user.email=seed@corral.test commit --quiet -m "Initial commit of $repo"
  git -C "$seed" push --quiet "$root/$repo.git" main
  rm -rf "$seed"
  # Pushes over HTTP: allowed for authenticated users (lighttpd sets REMOTE_USER).
  git -C "$root/$repo.git" config http.receivepack true
fi
printf 'x-access-token:%s\n' "$GIT_TOKEN" >/tmp/git-users
cat >/tmp/lighttpd.conf <<CONF
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv")
server.document-root = "$root"
server.port = $port
alias.url = ("/" => "/usr/lib/git-core/git-http-backend/")
cgi.assign = ("" => "")
setenv.add-environment = ("GIT_PROJECT_ROOT" => "$root", "GIT_HTTP_EXPORT_ALL" => "", "HOME" => "/tmp")
auth.backend = "plain"
auth.backend.plain.userfile = "/tmp/git-users"
auth.require = ("/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
CONF
echo "serving /$repo.git on :$port"
exec lighttpd -D -f /tmp/lighttpd.conf

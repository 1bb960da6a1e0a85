export type Expansion = { ok: true; value: string } | { ok: false; message: string };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Expands `${VAR}` and `${VAR:-default}` from `env` (shell semantics: the default also applies when VAR is
 * empty). `$${` is a literal `${`. An unset VAR without a default is an error, never an empty string,
 * because a silently empty token or password is worse than a refusal to start.
 */
export function expandVars(text: string, env: NodeJS.ProcessEnv): Expansion {
  if (!text.includes('${')) return { ok: true, value: text };
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text.charAt(i);
      i++;
      continue;
    }
    const end = text.indexOf('}', i + 2);
    if (end < 0)
      return { ok: false, message: `unterminated "\${" in "${text}" (write "$\${" for a literal "\${")` };
    const body = text.slice(i + 2, end);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      return {
        ok: false,
        message: `"\${${body}}" is not a variable reference; use \${NAME} or \${NAME:-default}`,
      };
    }
    const value = env[name];
    if (sep >= 0) out += value === undefined || value === '' ? body.slice(sep + 2) : value;
    else if (value === undefined) {
      return {
        ok: false,
        message: `environment variable ${name} is not set (use \${${name}:-default} for a default)`,
      };
    } else out += value;
    i = end + 1;
  }
  return { ok: true, value: out };
}

/// The console's only script and style sheet, served from `/console/app.js` and
/// `/console/app.css` (the Content-Security-Policy allows scripts and styles from the console's
/// own origin only; nothing is loaded from elsewhere).
///
/// Guarantees: the script builds rows with `textContent` and `setAttribute` only, never
/// `innerHTML`, so live updates render caller-controlled text as text.
enum ConsoleAssets {
    static let script = #"""
        (function () {
          'use strict';
          var body = document.body;
          // Server time minus ours, so countdowns follow the gateway's clock.
          var skew = (+body.getAttribute('data-now') || Date.now()) - Date.now();
          function left(ms) {
            var s = Math.round((ms - Date.now() - skew) / 1000);
            if (s <= 0) return 'expired';
            var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
            return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + r + 's';
          }
          function tick() {
            var cells = document.querySelectorAll('[data-expires]');
            for (var i = 0; i < cells.length; i++) cells[i].textContent = left(+cells[i].getAttribute('data-expires'));
          }
          tick();
          setInterval(tick, 1000);

          var selected = -1;
          function rows() { return document.querySelectorAll('tr.row'); }
          function select(n) {
            var all = rows();
            for (var i = 0; i < all.length; i++) all[i].classList.toggle('selected', i === n);
            selected = all.length ? Math.max(0, Math.min(n, all.length - 1)) : -1;
            if (selected >= 0) all[selected].classList.add('selected');
          }
          function cell(tr, text, cls) {
            var td = document.createElement('td');
            td.textContent = text;
            if (cls) td.className = cls;
            tr.appendChild(td);
            return td;
          }
          function render(data) {
            var old = document.getElementById('inbox-rows');
            if (!old) return;
            var tbody = document.createElement('tbody');
            tbody.id = 'inbox-rows';
            data.pending.forEach(function (r) {
              var tr = document.createElement('tr');
              tr.className = 'row';
              tr.setAttribute('data-id', r.request_id);
              var td = document.createElement('td');
              var a = document.createElement('a');
              a.href = '/console/requests/' + encodeURIComponent(r.request_id);
              a.textContent = r.method + ' ' + r.path;
              td.appendChild(a);
              tr.appendChild(td);
              var who = cell(tr, r.requester_person + ' ');
              var id = document.createElement('span');
              id.className = 'id';
              id.textContent = '(' + r.requester + ')';
              who.appendChild(id);
              cell(tr, r.connection);
              cell(tr, r.reasons.join('; '));
              cell(tr, r.preview, 'preview');
              var e = cell(tr, left(r.expires_at_ms));
              e.setAttribute('data-expires', String(r.expires_at_ms));
              cell(tr, r.approvals + ' of ' + r.approvals_required);
              tbody.appendChild(tr);
            });
            old.parentNode.replaceChild(tbody, old);
            document.getElementById('pending-count').textContent = String(data.pending.length);
            document.getElementById('empty').hidden = data.pending.length > 0;
            select(selected < 0 ? 0 : selected);
          }
          if (document.getElementById('inbox') && window.EventSource) {
            var events = new EventSource('/console/events');
            events.addEventListener('inbox', function (ev) {
              var data = JSON.parse(ev.data);
              skew = data.now_ms - Date.now();
              render(data);
              body.setAttribute('data-live', 'on');
            });
            // The session ended (signed out elsewhere, expired): back to the sign-in page.
            events.addEventListener('signed-out', function () { events.close(); location.href = '/console/login'; });
            // Too many live tabs: this one stops updating (reload to try again).
            events.addEventListener('busy', function () { events.close(); body.setAttribute('data-live', 'busy'); });
          }
          if (rows().length) select(0);

          document.addEventListener('keydown', function (ev) {
            var t = ev.target;
            var typing = t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT');
            if (typing) {
              if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && t.form) { ev.preventDefault(); t.form.submit(); }
              else if (ev.key === 'Escape') t.blur();
              return;
            }
            if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
            var all = rows();
            if (ev.key === 'j') select(selected + 1);
            else if (ev.key === 'k') select(selected - 1);
            else if (ev.key === 'Enter' && selected >= 0 && all[selected]) {
              var link = all[selected].querySelector('a');
              if (link) location.href = link.href;
            } else if (ev.key === 'a' && document.getElementById('approve-reason')) { ev.preventDefault(); document.getElementById('approve-reason').focus(); }
            else if (ev.key === 'd' && document.getElementById('deny-reason')) { ev.preventDefault(); document.getElementById('deny-reason').focus(); }
            else if (ev.key === 'Escape' && document.getElementById('back')) location.href = '/console';
          });
        })();

        """#

    static let style = """
        :root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #1f5fbf; --bad: #b42318; --good: #1a7f37; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7f9; }
        header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1.2rem; background: #111827; color: #fff; }
        header .brand { font-weight: 700; letter-spacing: .04em; }
        header .who { margin-left: auto; }
        header .id { color: #9ca3af; }
        header button { background: transparent; color: #fff; border: 1px solid #6b7280; border-radius: 4px; padding: .2rem .6rem; cursor: pointer; }
        main { padding: 1rem 1.2rem; max-width: 1200px; }
        main.narrow { max-width: 420px; margin: 3rem auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
        h1 { font-size: 1.3rem; }
        h2 { font-size: 1.05rem; margin-top: 1.4rem; }
        label { display: block; margin: .6rem 0 .2rem; font-weight: 600; }
        input[type=password], textarea { width: 100%; padding: .45rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
        button { font: inherit; padding: .4rem 1rem; border-radius: 4px; border: 1px solid var(--line); background: #fff; cursor: pointer; margin-top: .5rem; }
        a.button { display: inline-block; padding: .5rem 1rem; border-radius: 4px; background: var(--accent); color: #fff; text-decoration: none; }
        button.approve { background: var(--good); color: #fff; border-color: var(--good); }
        button.deny { background: var(--bad); color: #fff; border-color: var(--bad); }
        .tabs a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
        .tabs a[aria-current] { font-weight: 700; border-bottom: 2px solid var(--accent); }
        table.list { width: 100%; border-collapse: collapse; margin-top: .8rem; background: #fff; }
        table.list th, table.list td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        table.list th { font-size: .8rem; text-transform: uppercase; color: var(--muted); }
        tr.selected { outline: 2px solid var(--accent); }
        td.preview, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .85rem; white-space: pre-wrap; word-break: break-all; }
        pre { background: #fff; border: 1px solid var(--line); padding: .8rem; border-radius: 4px; }
        .id { color: var(--muted); font-size: .85rem; }
        .hint { color: var(--muted); font-size: .85rem; }
        .error { color: var(--bad); font-weight: 600; }
        .notice { color: var(--good); font-weight: 600; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        .status-pending { color: #9a6700; font-weight: 600; }
        .status-denied, .status-expired, .status-failed { color: var(--bad); font-weight: 600; }
        .status-approved, .status-delivered { color: var(--good); font-weight: 600; }
        section.grant { margin-top: 1.5rem; padding: 1rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; max-width: 560px; }
        section.grant input[type=text], section.grant input[type=number], section.grant select { width: 100%; padding: .4rem; font: inherit; border: 1px solid var(--line); border-radius: 4px; }
        label.inline { font-weight: 400; }
        .status-active { color: var(--good); font-weight: 600; }
        .status-exhausted, .status-revoked { color: var(--muted); font-weight: 600; }
        section.decide { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem; margin-top: 1.2rem; }
        kbd { border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 3px; padding: 0 .3rem; font-size: .8rem; background: #fff; }

        """
}

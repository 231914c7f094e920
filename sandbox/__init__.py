"""Local simulators of the outside services Herald talks to (see DESIGN.md, "The sandbox").

They import nothing from Herald, bind to 127.0.0.1 (port 0 picks a free port) and run in the
test's event loop or in their own process: ``python -m sandbox.serve telegram|skebby`` prints
``READY <base url>`` and ``CONTROL <control API url>`` and serves until SIGTERM.

**Telegram Bot API** (``sandbox.telegram_simulator.TelegramSimulator``). The Bot API at
``/bot{token}/{method}`` for an unmodified python-telegram-bot (``base_url=sim.base_url``):
getMe, getUpdates (long polling, ``offset``, ``allowed_updates``, 409 when a second poller
starts or a webhook is set), setWebhook with its secret header, sendMessage, sendPhoto,
sendDocument, editMessageText, deleteMessage(s) (48 hours on the simulator's clock),
answerCallbackQuery, commands, getChat, sendChatAction. Texts are parsed as Telegram parses them
(HTML, MarkdownV2, Markdown: a 400 "can't parse entities ... at byte offset N" for bad markup,
lengths counted after parsing) and each recorded message keeps its visible text, entities and
inline keyboard (URL buttons checked). Drive it from Python: ``add_user``, ``send_text``,
``send_command``, ``send_contact``, ``press_button``, ``block_bot``, ``migrate_group``; read
``messages_to`` / ``wait_for_messages`` (``formatted("bold")``, ``links()``, ``url_buttons()``);
inject ``fail_next``, ``set_fault_rates``, ``set_latency``, ``hang_next``, ``enforce_limits``
(Telegram's flood limits) and whole outages with ``await set_outage("down" | "hang" | "refuse",
seconds=...)`` ("refuse" really closes the bot port and reopens the same one); ``stats()`` gives
the busiest second of sends across every client of the token (``reset_counters()`` starts
afresh). ``state_path=`` keeps people, chats, history and id counters in a JSON file across
restarts (``--state FILE`` for ``sandbox.serve``). Another process uses the control API at
``sim.control_url`` (its own port; also ``/_sim/`` on the bot port for ``herald chat``):
``POST /_sim/users``, ``/_sim/users/{id}/text|contact|button|block|unblock``,
``GET /_sim/chats/{id}/messages?after=&timeout=``, ``POST /_sim/faults``, ``/_sim/outage``,
``/_sim/counters/reset``, ``/_sim/reset``, ``GET /_sim/stats``; errors name the bad field.

**Skebby REST API v1.0** (``sandbox.skebby_simulator.SkebbySimulator``). ``sim.base_url`` is the
``/API/v1.0/REST/`` root for ``channels.skebby_gateway.SkebbyGateway``: session and token login
with idle expiry, ``POST sms`` and ``POST paramsms`` (Skebby's validation, GSM-7/UCS-2 fragments
billed per recipient on the rendered text, our ``order_id``, scheduled sends and their deletion),
order states and history, user status, received SMS (``newsrsmsmessage`` gives each message
once, ``srsmshistory``, ``mosmshistory``), the blacklist (``blacklist/sms``, ``smsbatch``;
blacklisted numbers end ``BLACKLISTED``, unbilled), contacts, groups, TPOA aliases, subaccounts,
2FA and landing pages. Drive it from Python: ``advance`` / ``set_state`` / ``set_outcome`` move
deliveries; ``receive_sms(sender, text, sim=, at=)`` makes an SMS arrive and ``reply_stop`` makes
a person answer STOP, which Skebby's Stop SMS service turns into a blacklist entry;
``fail_next``, ``hang_next``, ``drop_answer_next`` (accepted but the answer is lost),
``set_fault_rate``, ``set_latency`` and ``expire_sessions`` or an injected ``clock`` make
trouble; ``orders``, ``requests``, ``logins`` and ``credits`` tell what happened. Another process
uses ``sim.control_url`` (``/_sim/``, no login): ``POST /_sim/received``, ``/_sim/stop``,
``/_sim/advance``, ``GET /_sim/stats``.
"""

"""Everything the bot says, in English and Italian.

One catalog per language with the same keys and the same ``{placeholders}`` (a test checks it).
The language comes from the person's Telegram client, falling back to the configured default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LANGUAGES: Final = ("en", "it")

_EN: Final[dict[str, str]] = {
    "share_button": "📱 Share my phone number",
    "start_unlinked": (
        "Hello {first_name}! I deliver the notices of the organisation to the people in its "
        "records.\n\nTo receive them here, tap the button below to share your phone number: "
        "I will look it up and link this chat to you. Send /cancel to stop."
    ),
    "start_linked": (
        "Hello {names}! You are registered: the notices and messages meant for you arrive in "
        "this chat, and anything you write here reaches the office.\n\n"
        "Send /stop to stop receiving them, /help for the commands."
    ),
    "linked_now": (
        "Thank you, you are registered as {names}. From now on the notices and messages meant "
        "for you arrive in this chat.\n\nSend /stop to stop receiving them, /help for the commands."
    ),
    "number_unknown": (
        "Sorry, the number {phone} is not in our records, so I cannot link this chat. "
        "Please contact {support} to be added, then send /start again."
    ),
    "number_invalid": (
        "Sorry, I cannot read {phone} as a phone number. Please contact {support}, "
        "then send /start again."
    ),
    "not_your_contact": (
        "That is someone else's contact. For your safety I only accept your own number: "
        "please tap the button below."
    ),
    "need_contact": (
        "Please tap the button below to share your phone number: Telegram then confirms that "
        "the number is really yours, which typing it cannot do. Send /cancel to stop."
    ),
    "cancelled": "Registration cancelled. Send /start whenever you want to try again.",
    "timed_out": "The registration has expired. Send /start to try again.",
    "help": (
        "Here is what I understand:\n"
        "/start — register with your phone number, or see your registration\n"
        "/help — this list\n"
        "/stop — stop receiving messages in this chat\n"
        "/cancel — cancel the registration in progress\n\n"
        "Once registered, anything you write here reaches the office."
    ),
    "stopped": (
        "Done: you will no longer receive messages in this chat. To receive them again, "
        "send /start."
    ),
    "opted_out": (
        "You asked not to receive messages in this chat (/stop), so I cannot take this. "
        "Send /start to receive them again."
    ),
    "resubscribed": (
        "Welcome back, {names}! The notices and messages meant for you arrive in this chat "
        "again.\n\nSend /stop to stop receiving them, /help for the commands."
    ),
    "not_registered": (
        "You are not registered yet, so I cannot take this. Send /start and share your phone "
        "number to receive the organisation's notices; /help lists the commands."
    ),
    "echo": "Received, the office will read it:\n\n{text}",
    "only_text": "Sorry, I can only pass on text messages.",
    "unknown_command": "I do not know that command. /help lists the ones I understand.",
    "cmd_start": "Register, or see your registration",
    "cmd_help": "List the commands",
    "cmd_stop": "Stop receiving messages here",
    "cmd_cancel": "Cancel the registration in progress",
    "link_usage": "Send /link followed by the code Herald's console shows you, e.g. "
    "/link AB3D5F7H.",
    "link_invalid": "That code is unknown, used or expired. Ask the console for a new one.",
    "linked": "Linked: your test messages, {username}, now arrive in this chat.",
}

_IT: Final[dict[str, str]] = {
    "share_button": "📱 Condividi il mio numero di telefono",
    "start_unlinked": (
        "Ciao {first_name}! Recapito gli avvisi dell'organizzazione alle persone presenti nei "
        "suoi archivi.\n\nPer riceverli qui, tocca il pulsante qui sotto e condividi il tuo "
        "numero di telefono: lo cercherò e collegherò questa chat a te. Invia /cancel per "
        "annullare."
    ),
    "start_linked": (
        "Ciao {names}! Sei registrato: gli avvisi e i messaggi destinati a te arrivano in questa "
        "chat, e ciò che scrivi qui arriva all'ufficio.\n\n"
        "Invia /stop per non riceverli più, /help per i comandi."
    ),
    "linked_now": (
        "Grazie, sei registrato come {names}. D'ora in poi gli avvisi e i messaggi destinati a "
        "te arrivano in questa chat.\n\nInvia /stop per non riceverli più, /help per i comandi."
    ),
    "number_unknown": (
        "Spiacente, il numero {phone} non è nei nostri archivi, quindi non posso collegare "
        "questa chat. Contatta {support} per essere aggiunto, poi invia di nuovo /start."
    ),
    "number_invalid": (
        "Spiacente, non riesco a leggere {phone} come numero di telefono. Contatta {support}, "
        "poi invia di nuovo /start."
    ),
    "not_your_contact": (
        "Questo è il contatto di un'altra persona. Per la tua sicurezza accetto solo il tuo "
        "numero: tocca il pulsante qui sotto."
    ),
    "need_contact": (
        "Tocca il pulsante qui sotto per condividere il tuo numero di telefono: così Telegram "
        "conferma che il numero è davvero tuo, cosa che scriverlo non può fare. Invia /cancel "
        "per annullare."
    ),
    "cancelled": "Registrazione annullata. Invia /start quando vuoi riprovare.",
    "timed_out": "La registrazione è scaduta. Invia /start per riprovare.",
    "help": (
        "Ecco cosa capisco:\n"
        "/start — registrati con il tuo numero di telefono, o vedi la tua registrazione\n"
        "/help — questo elenco\n"
        "/stop — non ricevere più messaggi in questa chat\n"
        "/cancel — annulla la registrazione in corso\n\n"
        "Una volta registrato, ciò che scrivi qui arriva all'ufficio."
    ),
    "stopped": (
        "Fatto: non riceverai più messaggi in questa chat. Per riceverli di nuovo, invia /start."
    ),
    "opted_out": (
        "Hai chiesto di non ricevere più messaggi in questa chat (/stop), quindi non posso "
        "accettarlo. Invia /start per riceverli di nuovo."
    ),
    "resubscribed": (
        "Bentornato, {names}! Gli avvisi e i messaggi destinati a te arrivano di nuovo in "
        "questa chat.\n\nInvia /stop per non riceverli più, /help per i comandi."
    ),
    "not_registered": (
        "Non sei ancora registrato, quindi non posso accettarlo. Invia /start e condividi il tuo "
        "numero di telefono per ricevere gli avvisi dell'organizzazione; /help elenca i comandi."
    ),
    "echo": "Ricevuto, l'ufficio lo leggerà:\n\n{text}",
    "only_text": "Spiacente, posso inoltrare solo messaggi di testo.",
    "unknown_command": "Non conosco questo comando. /help elenca quelli che capisco.",
    "cmd_start": "Registrati, o vedi la tua registrazione",
    "cmd_help": "Elenca i comandi",
    "cmd_stop": "Non ricevere più messaggi qui",
    "cmd_cancel": "Annulla la registrazione in corso",
    "link_usage": "Invia /link seguito dal codice che ti mostra la console di Herald, ad es. "
    "/link AB3D5F7H.",
    "link_invalid": "Codice sconosciuto, già usato o scaduto. Chiedine uno nuovo alla console.",
    "linked": "Collegato: i tuoi messaggi di prova, {username}, ora arrivano in questa chat.",
}

CATALOGS: Final[dict[str, dict[str, str]]] = {"en": _EN, "it": _IT}
BOT_COMMANDS: Final = ("start", "help", "stop", "cancel")
MAX_MESSAGE_LENGTH: Final = 4096


def pick_language(language_code: str | None, default: str) -> str:
    """``it``, ``it-IT`` → ``it``; anything we have no catalog for → ``default``."""
    if language_code:
        primary = language_code.replace("_", "-").split("-", 1)[0].lower()
        if primary in CATALOGS:
            return primary
    return default if default in CATALOGS else "en"


@dataclass(frozen=True)
class Texts:
    language: str

    def __call__(self, key: str, **values: object) -> str:
        text = CATALOGS[self.language][key].format(**values)
        if len(text) > MAX_MESSAGE_LENGTH:
            text = text[: MAX_MESSAGE_LENGTH - 1] + "…"
        return text


def texts_for(language_code: str | None, default: str) -> Texts:
    return Texts(pick_language(language_code, default))

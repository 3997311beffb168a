"""Resident-facing texts that come from code rather than from flow files.

Every string here is a gettext msgid, extracted by ``pybabel extract`` through
the markers ``N_`` and ``pN_``. Keywords and answer words are catalog entries
too, with the context ``keyword`` or ``answer``: a translator writes the words
of their language separated by ``|`` (e.g. ``STOPP|ABMELDEN``).
"""

from bot.conversation.i18n import N_, nN_, pN_

# --- keywords (INTERFACES.md: residents' keywords) ---------------------------
KEYWORDS: dict[str, tuple[str, str]] = {
    "stop": pN_("keyword", "STOP|STOPALL|UNSUBSCRIBE|QUIT"),
    "start": pN_("keyword", "START|UNSTOP|RESUME"),
    "help": pN_("keyword", "HELP|INFO"),
    "language": pN_("keyword", "LANGUAGE|LANG"),
    "menu": pN_("keyword", "MENU|RESTART"),
    "delete": pN_("keyword", "DELETE|ERASE|FORGET ME"),
}
# German keywords are understood whatever the resident's language (INTERFACES.md).
GERMAN_KEYWORDS: dict[str, str] = {
    "stop": "STOPP|STOP|ABMELDEN",
    "start": "START|ANMELDEN",
    "help": "HILFE",
    "language": "SPRACHE",
    "menu": "MENÜ|MENUE|NEUSTART",
    "delete": "LÖSCHEN|LOESCHEN",
}

YES_WORDS = pN_("answer", "yes|y|ok|okay|sure|👍|✅")
NO_WORDS = pN_("answer", "no|n|nope|👎|❌")
CONTINUE_WORDS = pN_("answer", "continue|go on")
RESTART_WORDS = pN_("answer", "start over|new")

# --- keyword answers ---------------------------------------------------------
STOPPED = N_("You will get no more messages from us. Send START if you want to hear from us again.")
STARTED = N_("Welcome back! You will get messages from us again.")
HELP = N_(
    "This is Kiezstimme, the participation chat of {operator}. You can share ideas here.\n"
    "Send MENU to start again, LANGUAGE to change the language, "
    "STOP to get no more messages, DELETE to erase your data."
)
CONFIRM_DELETE = N_("Do you really want to delete all your data, including your ideas? This cannot be undone.")
DELETE_YES = N_("Yes, delete everything")
DELETE_NO = N_("No, keep my data")
DELETED = N_("All your data has been deleted. Goodbye! You can write to us again at any time.")
NOT_DELETED = N_("Good, nothing was deleted.")

# --- the dialogue's own guidance --------------------------------------------
NOT_UNDERSTOOD = N_("Sorry, I did not understand that. Please answer with one of the numbers.")
STUCK = N_("Stuck? Send HELP for help or MENU to start again.")
TEXT_EMPTY = N_("Please write your answer as a text message.")
TEXT_TOO_SHORT = nN_(
    "That is a bit short. Please write at least {min} character.",
    "That is a bit short. Please write at least {min} characters.",
)
TEXT_TOO_LONG = nN_(
    "That is too long ({length}). Please shorten it to at most {max} character.",
    "That is too long ({length}). Please shorten it to at most {max} characters.",
)
TEXT_NO_WORDS = N_("Please describe it in words.")
MEDIA_EXPECTED = N_("Please send a photo, or choose skip.")
MEDIA_TOO_LARGE = N_("This file is too large for us. Please send a shorter voice message or a smaller photo.")
MEDIA_NOT_ACCEPTED = N_("Sorry, I cannot use this kind of file here. Please write your answer as text.")
SKIP = N_("Skip")
TOO_LATE = N_("Sorry, this phase closed on {date}, so we could not take your answer. Thank you all the same!")
RESUME_PROMPT = N_("Welcome back! Last time you did not finish. Do you want to continue where you left off?")
RESUME_CONTINUE = N_("Continue")
RESUME_RESTART = N_("Start over")
VOICE_PLACEHOLDER = N_("(voice message)")
PHOTO_PLACEHOLDER = N_("(photo)")
NONE_GIVEN = N_("not given")

# --- the web chat page ------------------------------------------------------------
WEB_TITLE = N_("Kiezstimme – your idea for the city")
WEB_INTRO = N_("Chat with Kiezstimme and share your idea for the city.")
WEB_START = N_("Start the chat")
WEB_INPUT_LABEL = N_("Your message")
WEB_SEND = N_("Send")
WEB_LANGUAGE = N_("Change language")
WEB_ERROR = N_("The message could not be sent. Please try again.")

# --- reminders and notices ------------------------------------------------------------
REMINDER_DAYS = nN_(
    "Only {count} day left: {phase} (until {date}). Send MENU to take part.",
    "Only {count} days left: {phase} (until {date}). Send MENU to take part.",
)
REMINDER_HOURS = nN_(
    "Only {count} hour left: {phase} (until {date}). Send MENU to take part.",
    "Only {count} hours left: {phase} (until {date}). Send MENU to take part.",
)
REMINDER_UNFINISHED_DAYS = nN_(
    "You started but did not finish – {count} day left: {phase} (until {date}). Just reply to continue where you stopped.",  # noqa: E501 (a msgid)
    "You started but did not finish – {count} days left: {phase} (until {date}). Just reply to continue where you stopped.",  # noqa: E501 (a msgid)
)
REMINDER_UNFINISHED_HOURS = nN_(
    "You started but did not finish – {count} hour left: {phase} (until {date}). Just reply to continue where you stopped.",  # noqa: E501 (a msgid)
    "You started but did not finish – {count} hours left: {phase} (until {date}). Just reply to continue where you stopped.",  # noqa: E501 (a msgid)
)
IDEA_APPROVED = N_("Good news: your idea {reference} has been published. Thank you for taking part!")
IDEA_HIDDEN = N_("Your idea {reference} could not be published. Send HELP if you have questions.")

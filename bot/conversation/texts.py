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
    "help": pN_("keyword", "HELP"),
    "info": pN_("keyword", "INFO|PRIVACY"),
    "data": pN_("keyword", "DATA|MY DATA"),
    "language": pN_("keyword", "LANGUAGE|LANG"),
    "menu": pN_("keyword", "MENU|RESTART"),
    "delete": pN_("keyword", "DELETE|ERASE|FORGET ME"),
}
# German keywords are understood whatever the resident's language (INTERFACES.md).
GERMAN_KEYWORDS: dict[str, str] = {
    "stop": "STOPP|STOP|ABMELDEN",
    "start": "START|ANMELDEN",
    "help": "HILFE",
    "info": "INFO|DATENSCHUTZ",
    "data": "DATEN|MEINE DATEN",
    "language": "SPRACHE",
    "menu": "MENÜ|MENUE|NEUSTART",
    "delete": "LÖSCHEN|LOESCHEN",
}

YES_WORDS = pN_("answer", "yes|y|ok|okay|sure|👍|✅")
NO_WORDS = pN_("answer", "no|n|nope|👎|❌")
CONTINUE_WORDS = pN_("answer", "continue|go on")
RESTART_WORDS = pN_("answer", "start over|new")
UNSURE_WORDS = pN_("answer", "maybe|not sure|unsure|don't know|dunno|🤷")
SKIP_WORDS = pN_("answer", "skip|no comment|nothing|none|no thanks|-")

# --- keyword answers ---------------------------------------------------------
STOPPED = N_("You will get no more messages from us. Send START if you want to hear from us again.")
STARTED = N_("Welcome back! You will get messages from us again.")
HELP = N_(
    "This is Kiezstimme, the participation chat of {operator}. {phase}\n"
    "To talk to a person: {contact}\n"
    "Send MENU to start again, LANGUAGE to change the language, "
    "STOP to get no more messages, DATA to see what we store about you, DELETE to erase it, "
    "INFO for how we handle your data."
)
PRIVACY_NOTICE = N_(
    "Kiezstimme is run by {operator} and collects ideas for the city's strategy. "
    "We store your answers, language and district, but never your phone number with your idea. "
    "You can send DELETE at any time to erase your data, STOP to get no more messages, "
    "LANGUAGE to change the language. Questions: {contact}"
)
CONTACT = N_("phone {phone}, e-mail {email} ({hours})")
PHASE_OPEN = N_("Right now: {phase}, until {date}.")
PHASE_NEXT = N_("Next: {phase}, from {date}.")
PHASES_OVER = N_("The participation has ended. Thank you to everyone who took part!")
NOTHING_OPEN = N_("Right now there is nothing to take part in. {next}")
CONFIRM_DELETE = N_("Do you really want to delete all your data, including your ideas? This cannot be undone.")
DELETE_YES = N_("Yes, delete everything")
DELETE_NO = N_("No, keep my data")
DELETE_KEEP_IDEAS = N_("Delete my data, keep my ideas anonymously")
DELETED_KEPT_IDEAS = N_(
    "Your data has been deleted. Your ideas stay, without your name or number. Goodbye! "
    "You can write to us again at any time."
)
DELETED = N_("All your data has been deleted. Goodbye! You can write to us again at any time.")
NOT_DELETED = N_("Good, nothing was deleted.")

# --- the dialogue's own guidance --------------------------------------------
NOT_UNDERSTOOD = N_("Sorry, I did not understand that. Please answer with one of the numbers.")
NOT_UNDERSTOOD_BUTTONS = N_("Sorry, I did not understand that. Please tap one of the buttons.")
CHOOSE_FROM = N_("You can choose:")
STUCK = N_("Stuck? Send HELP for help or MENU to start again. To talk to a person: {contact}")
DID_YOU_MEAN = N_("Did you mean {option}?")
YES = N_("Yes")
NO = N_("No")
TAKE_AS_IDEA = N_("That sounds like an idea: {idea}\nShall we take it as your idea?")
UNSUPPORTED_LOCATION = N_("Thank you, but I cannot use a location here. Please write your answer as text.")
UNSUPPORTED_CONTACT = N_("Thank you, but I cannot use a contact card here. Please write your answer as text.")
UNSUPPORTED_POLL = N_("Thank you, but I cannot take part in polls here. Please write your answer as text.")
UNSUPPORTED_STICKER = N_("Nice sticker! Please write your answer as text.")
UNSUPPORTED_OTHER = N_("Sorry, I cannot use this kind of message here. Please write your answer as text.")
ALBUM_LIMIT = nN_(
    "Thank you! We keep at most {count} photo per answer.",
    "Thank you! We keep at most {count} photos per answer.",
)
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
IDEA_APPROVED = N_("Good news: your idea {reference} has been accepted. Thank you for taking part!")
IDEA_PUBLISHED = N_("Good news: your idea {reference} has been published: {url} Thank you for taking part!")
IDEA_HIDDEN = N_("Your idea {reference} could not be accepted. If you have questions, please contact us: {contact}")
# the organiser's own words (in their language), told with a status, marked as theirs
IDEA_STATUS_NOTE = N_("A note from the team: {note}")

# --- what we store about a resident (the DATA keyword) --------------------------------------------
DATA_HEADER = N_("This is what Kiezstimme stores about you:")
DATA_LANGUAGE = N_("Language: {language}")
DATA_CONSENT = N_("Consent: given on {date} (privacy notice version {version})")
DATA_NO_CONSENT = N_("Consent: not given")
DATA_UPDATES_YES = N_("News and reminders: yes (send STOP to end them)")
DATA_UPDATES_NO = N_("News and reminders: no")
DATA_STOPPED = N_("Messages: stopped (send START to get them again)")
DATA_SOURCE = N_("You came to us through: {source}")
DATA_CHANNELS = N_("How we reach you: {channels} (the number or account itself is stored encrypted)")
CHANNEL_WEBCHAT = N_("web chat")  # in DATA's list of channels (brand names stay as they are)
DATA_IDEA = N_("Idea {reference} of {date} ({status}): {text}")
DATA_RATING = N_("Statement {number} ({date}): {rating}")
DATA_RATING_COMMENT = N_("Statement {number} ({date}): {rating}. Your comment: {comment}")
DATA_NOTHING_YET = N_("Ideas and ratings: none yet")
DATA_ACTOR_GROUP = N_("Your group (kept apart from your ideas): {group}")
DATA_AGE_BAND = N_("Your age: {age}")
DATA_FOOTER = N_("Send DELETE to erase all of this, INFO for how we handle your data.")
STATUS_NEW = N_("received")
STATUS_APPROVED = N_("accepted")
STATUS_HIDDEN = N_("not accepted")
NOTICE_CHANGED = N_("Our privacy notice has changed. Please read it and tell us whether you agree.")

# --- abuse limits (bot/delivery/limits.py) ----------------------------------------------
FLOOD_NOTICE = N_("You are sending a lot of messages at once. I will answer again in a few minutes.")
